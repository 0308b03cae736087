import { randomBytes } from "node:crypto";

/**
 * The one key of the table an empty JSON array becomes on its way into Lua:
 * the Lua side (S.int_keys, S.arrays) turns that table into an empty list
 * marked as such, which goes back out as [] rather than {}. Random per
 * process, so no data can carry it.
 */
export const EMPTY_ARRAY_KEY = `__sloth_empty_array_${randomBytes(12).toString("hex")}`;

/**
 * Prepares a JavaScript value for wasmoon: drops nulls (wasmoon would push a
 * userdata that Lua cannot test against nil), marks empty arrays (see
 * EMPTY_ARRAY_KEY) and copies the rest.
 */
export function toLua(value: unknown): unknown {
  if (value === null) return undefined;
  if (Array.isArray(value))
    return value.length === 0 ? { [EMPTY_ARRAY_KEY]: true } : value.map(toLua);
  if (typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v !== null && v !== undefined) out[k] = toLua(v);
    }
    return out;
  }
  return value;
}
