import type { JsonValue } from "./json.js";

/** A value that may or may not need awaiting; lets a local backend stay synchronous. */
export type MaybePromise<T> = T | Promise<T>;

/** A live entry as a backend returns it; times are ms since the epoch. */
export interface StoredEntry {
  key: string;
  value: JsonValue;
  createdAt: number;
  updatedAt: number;
  /** Null when the key has no TTL. */
  expiresAt: number | null;
}

/** A current lock holder as a backend returns it; times are ms since the epoch. */
export interface StoredLock {
  name: string;
  owner: string;
  token: number;
  acquiredAt: number;
  expiresAt: number;
}

/** Outcome of one lock attempt: the new or renewed lease, or who holds it. */
export type LockAttempt =
  | { ok: true; token: number; acquiredAt: number; expiresAt: number }
  | { ok: false; holder: StoredLock };

/**
 * The primitive operations a store needs, with arguments already validated
 * (names non-empty, values encoded as JSON text, TTLs in positive ms). The
 * SQLite file backend implements it; a network client can implement it too
 * and get the same {@link StateStore} facade, leases and `withLock` for free.
 * Each operation must be atomic, and expiry is judged by the backend's clock.
 */
export interface StateBackend {
  get(namespace: string, key: string): MaybePromise<StoredEntry | undefined>;
  /** `ttlMs` undefined clears any TTL. */
  set(namespace: string, key: string, json: string, ttlMs: number | undefined): MaybePromise<void>;
  /** True when a live key was deleted. */
  delete(namespace: string, key: string): MaybePromise<boolean>;
  /** Live entries whose key starts with `prefix`, in key order (UTF-8 byte order). */
  list(namespace: string, prefix: string, limit: number): MaybePromise<StoredEntry[]>;
  /** Adds `by` to a number (a missing key counts as 0); keeps the key's TTL. */
  increment(namespace: string, key: string, by: number): MaybePromise<number>;
  /** Replaces the value when it structurally equals `expected` (undefined: absent). */
  cas(
    namespace: string,
    key: string,
    expected: JsonValue | undefined,
    nextJson: string | undefined,
    ttlMs: number | undefined,
  ): MaybePromise<{ ok: boolean; current: JsonValue | undefined }>;
  /** Takes a free or expired lock with a new token; renews it for the same owner. */
  tryLock(namespace: string, name: string, owner: string, ttlMs: number): MaybePromise<LockAttempt>;
  /** New expiry, or undefined when the lease is no longer held. */
  extendLock(
    namespace: string,
    name: string,
    owner: string,
    token: number,
    ttlMs: number,
  ): MaybePromise<number | undefined>;
  /** True when the lease was still held (and is now released). */
  releaseLock(namespace: string, name: string, owner: string, token: number): MaybePromise<boolean>;
  inspectLock(namespace: string, name: string): MaybePromise<StoredLock | undefined>;
  /** Breaks a lock (only `owner`'s when given); returns the broken holder. */
  unlock(
    namespace: string,
    name: string,
    owner: string | undefined,
  ): MaybePromise<StoredLock | undefined>;
  /** Deletes expired keys and locks; returns how many rows went. */
  purgeExpired(): MaybePromise<number>;
  close(): MaybePromise<void>;
}
