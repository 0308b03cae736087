import type { StateBackend } from "./backend.js";
import { invalid } from "./errors.js";
import { encodeJson, type JsonValue } from "./json.js";
import { validateName } from "./store.js";

function parseValue(json: string, key: string): { value: JsonValue; json: string } {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    throw invalid(
      `cannot store key '${key}': the value is not JSON text (${(e as Error).message})`,
    );
  }
  // Re-encoding refuses what JSON.parse accepts but a store cannot keep (1e999 → Infinity).
  return { value: value as JsonValue, json: encodeJson(value, key) };
}

function positiveMs(ms: number | undefined, what: string): number | undefined {
  if (ms === undefined) return undefined;
  if (!Number.isSafeInteger(ms) || ms <= 0) {
    throw invalid(`invalid ${what} ${ms}: expected a positive whole number of ms`);
  }
  return ms;
}

const ttlRequired = (ms: number) => positiveMs(ms, "ttl") as number;

function token(t: number): number {
  if (!Number.isSafeInteger(t) || t <= 0) {
    throw invalid(`invalid fencing token ${t}: expected a positive integer`);
  }
  return t;
}

const owner = (o: string) => validateName(o, "owner");

/**
 * Wraps a backend so that every primitive argument is checked, for a server
 * whose callers bypass the {@link createStateStore} facade: names, JSON
 * text, TTLs, tokens and amounts are validated, and bad ones fail with
 * `SLOTH_INVALID_ARGUMENT` instead of reaching the file.
 */
export function checkedBackend(inner: StateBackend): StateBackend {
  const ns = (n: string) => validateName(n, "namespace");
  const key = (k: string) => validateName(k, "key");
  const lock = (n: string) => validateName(n, "lock name");
  return {
    get: (n, k) => inner.get(ns(n), key(k)),
    set: (n, k, json, ttl) =>
      inner.set(ns(n), key(k), parseValue(json, k).json, positiveMs(ttl, "ttl")),
    delete: (n, k) => inner.delete(ns(n), key(k)),
    list: (n, prefix, limit) => {
      if (typeof prefix !== "string") throw invalid("invalid prefix: expected a string");
      if (!(limit >= 0)) throw invalid(`invalid limit ${limit}: expected a non-negative number`);
      return inner.list(ns(n), prefix, limit);
    },
    increment: (n, k, by) => {
      if (typeof by !== "number" || !Number.isFinite(by)) {
        throw invalid(`cannot increment key '${k}': 'by' must be a finite number`, { by });
      }
      return inner.increment(ns(n), key(k), by);
    },
    cas: (n, k, expected, next, ttl) => {
      key(k);
      if (expected !== undefined) encodeJson(expected, k);
      const json = next === undefined ? undefined : parseValue(next, k).json;
      return inner.cas(ns(n), k, expected, json, positiveMs(ttl, "ttl"));
    },
    tryLock: (n, name, o, ttl) => inner.tryLock(ns(n), lock(name), owner(o), ttlRequired(ttl)),
    extendLock: (n, name, o, t, ttl) =>
      inner.extendLock(ns(n), lock(name), owner(o), token(t), ttlRequired(ttl)),
    releaseLock: (n, name, o, t) => inner.releaseLock(ns(n), lock(name), owner(o), token(t)),
    inspectLock: (n, name) => inner.inspectLock(ns(n), lock(name)),
    unlock: (n, name, o) => inner.unlock(ns(n), lock(name), o === undefined ? undefined : owner(o)),
    purgeExpired: () => inner.purgeExpired(),
    close: () => inner.close(),
  };
}
