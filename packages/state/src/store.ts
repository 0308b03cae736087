import type { StateBackend, StoredEntry, StoredLock } from "./backend.js";
import { parseTtl } from "./duration.js";
import { invalid, StateError } from "./errors.js";
import { encodeJson, type JsonValue } from "./json.js";
import { acquireLease } from "./lease.js";
import type { LockInfo, SetOptions, StateEntry, StateStore } from "./types.js";

const MAX_NAME_LENGTH = 1024;

// Node 20 has String.prototype.isWellFormed; the ES2023 lib types do not.
const wellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/** Checks a key, lock or namespace name: a non-empty, well-formed string. */
export function validateName(value: unknown, what: string): string {
  if (typeof value !== "string" || value.length === 0) {
    throw invalid(`invalid ${what}: expected a non-empty string`, { [what]: value });
  }
  if (value.length > MAX_NAME_LENGTH || !wellFormed(value)) {
    throw invalid(
      `invalid ${what} '${value.slice(0, 40)}': at most ${MAX_NAME_LENGTH} characters of valid Unicode`,
    );
  }
  return value;
}

function toEntry<T extends JsonValue>(e: StoredEntry): StateEntry<T> {
  return {
    key: e.key,
    value: e.value as T,
    createdAt: new Date(e.createdAt),
    updatedAt: new Date(e.updatedAt),
    expiresAt: e.expiresAt === null ? undefined : new Date(e.expiresAt),
  };
}

function toInfo(ns: string, l: StoredLock): LockInfo {
  return {
    namespace: ns,
    name: l.name,
    holder: l.owner,
    fencingToken: l.token,
    acquiredAt: new Date(l.acquiredAt),
    expiresAt: new Date(l.expiresAt),
  };
}

function ttlOf(options: SetOptions | undefined): number | undefined {
  return options?.ttl === undefined ? undefined : parseTtl(options.ttl);
}

/** Shared by every namespace view of one store. */
interface Shared {
  backend: StateBackend;
  closed: boolean;
}

/**
 * Wraps a backend in the public {@link StateStore}: validates every input,
 * encodes values, and builds leases. A network client implementing
 * {@link StateBackend} gets identical behaviour from this same facade.
 */
export function createStateStore(backend: StateBackend, namespace = "default"): StateStore {
  return view({ backend, closed: false }, validateName(namespace, "namespace"));
}

function view(shared: Shared, ns: string): StateStore {
  const b = (): StateBackend => {
    if (shared.closed)
      throw new StateError("SLOTH_STATE_CLOSED", "cannot use the state store: it is closed");
    return shared.backend;
  };
  const key = (k: unknown) => validateName(k, "key");
  const lockName = (n: unknown) => validateName(n, "lock name");

  const store: StateStore = {
    namespace: ns,
    withNamespace: (other) => view(shared, validateName(other, "namespace")),
    // The hot path: no async function, so a local read costs one resolved promise.
    get<T extends JsonValue>(k: string): Promise<T | undefined> {
      try {
        const e = b().get(ns, key(k));
        return e instanceof Promise
          ? e.then((v) => v?.value as T | undefined)
          : Promise.resolve(e?.value as T | undefined);
      } catch (err) {
        return Promise.reject(err);
      }
    },
    async getEntry<T extends JsonValue>(k: string) {
      const e = await b().get(ns, key(k));
      return e ? toEntry<T>(e) : undefined;
    },
    async set(k, value, options) {
      key(k);
      await b().set(ns, k, encodeJson(value, k), ttlOf(options));
    },
    async delete(k) {
      return b().delete(ns, key(k));
    },
    async has(k) {
      return (await b().get(ns, key(k))) !== undefined;
    },
    async list(options = {}) {
      const prefix = options.prefix ?? "";
      if (typeof prefix !== "string") throw invalid("invalid prefix: expected a string");
      const limit = options.limit ?? Number.POSITIVE_INFINITY;
      if (
        typeof limit !== "number" ||
        !(limit >= 0) ||
        (limit !== Number.POSITIVE_INFINITY && !Number.isInteger(limit))
      )
        throw invalid(`invalid limit ${String(limit)}: expected a whole number of at least 0`);
      return (await b().list(ns, prefix, limit)).map((e) => toEntry(e));
    },
    async increment(k, by = 1) {
      key(k);
      if (typeof by !== "number" || !Number.isFinite(by)) {
        throw invalid(`cannot increment key '${k}': 'by' must be a finite number`, { by });
      }
      return b().increment(ns, k, by);
    },
    async cas(k, expected, next, options) {
      key(k);
      if (expected !== undefined) encodeJson(expected, k);
      const json = next === undefined ? undefined : encodeJson(next, k);
      return b().cas(ns, k, expected, json, ttlOf(options));
    },
    async lock(name, options) {
      return acquireLease(b(), ns, lockName(name), options);
    },
    async withLock(name, fn, options = {}) {
      const lease = await acquireLease(b(), ns, lockName(name), {
        ...options,
        autoRenew: options.autoRenew ?? true,
      });
      let result: Awaited<ReturnType<typeof fn>>;
      try {
        result = await fn(lease.signal, lease);
      } catch (e) {
        // fn's own failure is the answer; the lock is released either way.
        await Promise.resolve(lease[Symbol.asyncDispose]()).catch(() => {});
        throw e;
      }
      // A lease lost while fn ran (another holder may have run meanwhile)
      // is a failure, not a result: SLOTH_LOCK_LOST.
      await lease.release();
      return result;
    },
    async inspect(name) {
      const l = await b().inspectLock(ns, lockName(name));
      return l ? toInfo(ns, l) : undefined;
    },
    async unlock(name, options) {
      lockName(name);
      if (!options?.force && options?.owner === undefined) {
        throw invalid(`cannot unlock '${name}': pass force: true or the owner`);
      }
      const l = await b().unlock(ns, name, options.force ? undefined : options.owner);
      return l ? toInfo(ns, l) : undefined;
    },
    async purgeExpired() {
      return b().purgeExpired();
    },
    async close() {
      if (shared.closed) return;
      shared.closed = true;
      await shared.backend.close();
    },
    async [Symbol.asyncDispose]() {
      await store.close();
    },
  };
  return store;
}
