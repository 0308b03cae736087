/**
 * Prepares a JavaScript value for wasmoon: drops nulls (wasmoon would push a
 * userdata that Lua cannot test against nil) and copies the rest.
 */
export function toLua(value: unknown): unknown {
  if (value === null) return undefined;
  if (Array.isArray(value)) return value.map(toLua);
  if (typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v !== null && v !== undefined) out[k] = toLua(v);
    }
    return out;
  }
  return value;
}
