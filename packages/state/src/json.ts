import { invalid } from "./errors.js";

/** A JSON value: what a key can hold. `null` is a value; `undefined` is absence. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/**
 * Serialises a value, first checking that it survives a JSON round trip
 * unchanged: no undefined, functions, symbols, bigints, non-finite numbers,
 * class instances (Date, Map) or cycles, which `JSON.stringify` would
 * silently drop or mangle.
 */
export function encodeJson(value: unknown, key: string): string {
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw notJson(key, "$", `${value} is not a finite number`);
      return JSON.stringify(value);
    default:
      check(value, key, "$", new Set());
      return JSON.stringify(value);
  }
}

function check(value: unknown, key: string, path: string, seen: Set<object>): void {
  if (value === null || typeof value === "string" || typeof value === "boolean") return;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw notJson(key, path, `${value} is not a finite number`);
    return;
  }
  if (value === undefined)
    throw notJson(key, path, "undefined is not JSON (store null, or delete the key)");
  if (typeof value !== "object") throw notJson(key, path, `a ${typeof value} is not JSON`);
  if (seen.has(value)) throw notJson(key, path, "the value contains a cycle");
  seen.add(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) check(value[i], key, `${path}[${i}]`, seen);
  } else {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const name = (value as object).constructor?.name ?? "object";
      throw notJson(key, path, `a ${name} is not a plain JSON object`);
    }
    if (Object.getOwnPropertySymbols(value).length > 0) {
      throw notJson(key, path, "symbol keys are not JSON");
    }
    for (const k of Object.keys(value)) {
      check((value as Record<string, unknown>)[k], key, `${path}.${k}`, seen);
    }
  }
  seen.delete(value);
}

function notJson(key: string, path: string, reason: string) {
  return invalid(`cannot store key '${key}': ${reason} (at ${path})`, { key, path });
}

/** Structural equality of two JSON values; object key order is ignored. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ak = Object.keys(a);
  if (ak.length !== Object.keys(b).length) return false;
  for (const k of ak) {
    if (!Object.hasOwn(b, k)) return false;
    if (!jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
      return false;
  }
  return true;
}
