import type { Duration } from "./duration.js";
import type { JsonValue } from "./json.js";

/** A live key with its metadata. */
export interface StateEntry<T extends JsonValue = JsonValue> {
  key: string;
  value: T;
  createdAt: Date;
  updatedAt: Date;
  /** When the key disappears; undefined for keys without a TTL. */
  expiresAt: Date | undefined;
}

/** Options of `set` and `cas`. */
export interface SetOptions {
  /** Time to live (ms or `"30s"`); omitted means the key never expires. */
  ttl?: Duration | undefined;
}

/** Options of `list`. */
export interface ListOptions {
  /** Only keys starting with this string (default: all). */
  prefix?: string | undefined;
  /** At most this many entries (default: no limit). */
  limit?: number | undefined;
}

/** Result of `cas`: whether the swap happened, and the value now stored. */
export interface CasResult<T extends JsonValue = JsonValue> {
  ok: boolean;
  /** The value after the call: `next` on success, else what is stored (undefined if absent). */
  current: T | undefined;
}

/** Options of `lock` and `withLock`. */
export interface LockOptions {
  /** Lease length (default 30 s). A holder that neither renews nor releases loses the lock after it. */
  ttl?: Duration | undefined;
  /** How long to wait for a held lock (default 0: fail at once with `SLOTH_LOCK_HELD`). */
  waitMs?: Duration | undefined;
  /** Aborts the wait (`SLOTH_CANCELLED`). */
  signal?: AbortSignal | undefined;
  /**
   * Who holds the lock (default: unique per call, `host/pid/random`). The
   * same owner locking again gets its lease extended with the same token.
   */
  owner?: string | undefined;
  /** Renew the lease every third of its TTL until released (default false; true in `withLock`). */
  autoRenew?: boolean | undefined;
}

/** A current lock holder. */
export interface LockInfo {
  namespace: string;
  name: string;
  /** The holder's owner string. */
  holder: string;
  fencingToken: number;
  acquiredAt: Date;
  expiresAt: Date;
}

/**
 * A held lock. Pass `fencingToken` with every write to the protected
 * resource, and have the resource refuse tokens lower than the highest it
 * has seen: a holder paused past its TTL does not know it lost the lock.
 */
export interface Lease extends AsyncDisposable {
  readonly namespace: string;
  readonly name: string;
  readonly owner: string;
  /** Strictly larger than every token issued before for this lock name. */
  readonly fencingToken: number;
  readonly acquiredAt: Date;
  /** Current expiry as last granted by the store. */
  readonly expiresAt: Date;
  /** Aborts (reason: a `SLOTH_LOCK_LOST` error) when the lease is known lost. */
  readonly signal: AbortSignal;
  /** Pushes the expiry to now + `ttl` (default: the lease's TTL); `SLOTH_LOCK_LOST` if lost. */
  extend(ttl?: Duration): Promise<void>;
  /** Releases the lock; `SLOTH_LOCK_LOST` if it had expired or was broken. Idempotent. */
  release(): Promise<void>;
}

/**
 * The state store: namespaced JSON keys with TTLs, compare-and-swap,
 * counters and locks with fencing tokens. Every method is async so a local
 * file store and a network client share this one interface.
 */
export interface StateStore extends AsyncDisposable {
  /** The namespace this view reads and writes. */
  readonly namespace: string;
  /** A view of the same store in another namespace (keys and locks are isolated). */
  withNamespace(namespace: string): StateStore;
  /** The value, or undefined when absent or expired. The type parameter is not checked. */
  get<T extends JsonValue = JsonValue>(key: string): Promise<T | undefined>;
  /** The value with its metadata, or undefined. */
  getEntry<T extends JsonValue = JsonValue>(key: string): Promise<StateEntry<T> | undefined>;
  /** Stores a JSON value; without `ttl` any previous TTL is cleared. */
  set(key: string, value: JsonValue, options?: SetOptions): Promise<void>;
  /** True when a live key was deleted. */
  delete(key: string): Promise<boolean>;
  has(key: string): Promise<boolean>;
  /** Live entries in key order (UTF-8 byte order). */
  list(options?: ListOptions): Promise<StateEntry[]>;
  /** Adds `by` (default 1); a missing key starts at 0; a non-number fails with `SLOTH_STATE_NOT_A_NUMBER`. */
  increment(key: string, by?: number): Promise<number>;
  /**
   * Sets `next` if the current value structurally equals `expected`
   * (key order ignored). `expected` undefined means absent or expired;
   * `next` undefined deletes.
   */
  cas<T extends JsonValue = JsonValue>(
    key: string,
    expected: JsonValue | undefined,
    next: T | undefined,
    options?: SetOptions,
  ): Promise<CasResult>;
  /** Takes a lock, waiting up to `waitMs`; see {@link LockOptions}. */
  lock(name: string, options?: LockOptions): Promise<Lease>;
  /**
   * Runs `fn` holding the lock (auto-renewed unless `autoRenew: false`) and
   * releases it after. `fn` gets the lease's signal, aborted if the lease is
   * lost. Resolves with `fn`'s result only if the lock was still held when
   * `fn` ended; a lease lost meanwhile (another holder may have run) rejects
   * with SLOTH_LOCK_LOST, as `fn`'s own failure rejects with it.
   */
  withLock<T>(
    name: string,
    fn: (signal: AbortSignal, lease: Lease) => Promise<T> | T,
    options?: LockOptions,
  ): Promise<T>;
  /** The current holder, or undefined when the lock is free. */
  inspect(name: string): Promise<LockInfo | undefined>;
  /**
   * Breaks a lock: any holder with `force`, else only `owner`'s.
   * Returns the holder that was removed, if any. Its token stays used.
   */
  unlock(name: string, options: { force?: boolean; owner?: string }): Promise<LockInfo | undefined>;
  /** Deletes expired keys and locks from storage (reads ignore them anyway). */
  purgeExpired(): Promise<number>;
  /** Closes the store, for every namespace view. */
  close(): Promise<void>;
}
