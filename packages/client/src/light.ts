/**
 * The parts of `@sloth/client` that load in a few milliseconds (no RPC, no
 * query builder): data directory resolution and a read-only masters listing.
 * For commands that must start fast; everything here is also exported from
 * the package root.
 */
export { type DataDir, type DataDirSource, resolveDataDir } from "./data-dir.js";
export { readMasters } from "./masters/read.js";
export type { MasterRecord, MasterTlsPaths } from "./masters/store.js";
