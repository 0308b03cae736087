/**
 * The parts of `@sloth/client` that load in a few milliseconds (no RPC, no
 * query builder): data directory resolution, a read-only masters listing,
 * SQLite opening, durations, errors and process liveness. For commands and
 * libraries that must start fast (local stores: history, stacks);
 * everything here is also exported from the package root.
 */
export { isAgentName, parseHostPort } from "./address.js";
export { type DataDir, type DataDirSource, ensurePrivateDir, resolveDataDir } from "./data-dir.js";
export { parseDuration } from "./duration.js";
export { isSlothError, SlothError, type SlothErrorCode, type SlothErrorOptions } from "./errors.js";
export { type ProcessIdentity, pidAlive, processGone, processIdentity } from "./liveness.js";
export { readMasters } from "./masters/read.js";
export type { MasterRecord, MasterTlsPaths } from "./masters/store.js";
export {
  type Durability,
  migrateWithRetry,
  type OpenSqliteOptions,
  openSqlite,
  openSqliteWith,
  sqliteOpenError,
  writeTransaction,
} from "./sqlite.js";
