/**
 * @sloth/state: an embeddable state and locking library on SQLite: JSON
 * keys with TTLs in isolated namespaces, compare-and-swap, counters, and
 * locks with fencing tokens, safe across processes sharing one file.
 */
export type {
  LockAttempt,
  MaybePromise,
  StateBackend,
  StoredEntry,
  StoredLock,
} from "./backend.js";
export { type ConnectStateOptions, connectState, type StateTls } from "./connect-state.js";
export { type Duration, parseDuration, parseTtl } from "./duration.js";
export { isStateError, StateError, type StateErrorCode, type StateErrorOptions } from "./errors.js";
export type { JsonValue } from "./json.js";
export { acquireLease, defaultOwner } from "./lease.js";
export { type OpenStateOptions, openState, openStateBackend } from "./open.js";
export type { Durability } from "./sqlite.js";
export { createStateStore } from "./store.js";
export type {
  CasResult,
  Lease,
  ListOptions,
  LockInfo,
  LockOptions,
  SetOptions,
  StateEntry,
  StateStore,
} from "./types.js";
