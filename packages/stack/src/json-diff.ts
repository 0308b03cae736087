import type { Difference, Json } from "./types.js";

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function child(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return IDENT.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

const isObject = (v: Json | undefined): v is { [key: string]: Json } =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The differences between `before` and `after`, deepest first found. With
 * `subset`, keys `after` has and `before` lacks are not differences (a
 * desired state names only what matters; a check may print more).
 */
export function diffJson(
  before: Json | undefined,
  after: Json | undefined,
  options: { subset?: boolean } = {},
  path = "$",
  out: Difference[] = [],
): Difference[] {
  if (before === undefined && after === undefined) return out;
  if (after === undefined) {
    out.push({ path, kind: "missing", before: before as Json });
    return out;
  }
  if (before === undefined) {
    if (!options.subset) out.push({ path, kind: "extra", after });
    return out;
  }
  if (isObject(before) && isObject(after)) {
    for (const k of Object.keys(before))
      diffJson(before[k], after[k], options, child(path, k), out);
    for (const k of Object.keys(after))
      if (!(k in before)) diffJson(undefined, after[k], options, child(path, k), out);
    return out;
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const n = Math.max(before.length, after.length);
    for (let i = 0; i < n; i++) {
      const a = i < before.length ? before[i] : undefined;
      const b = i < after.length ? after[i] : undefined;
      // A list is compared whole in length: extra items count even in subset mode.
      if (a === undefined) out.push({ path: child(path, i), kind: "extra", after: b as Json });
      else diffJson(a, b, options, child(path, i), out);
    }
    return out;
  }
  if (!sameScalar(before, after)) out.push({ path, kind: "changed", before, after });
  return out;
}

function sameScalar(a: Json, b: Json): boolean {
  if (a === b) return true;
  // A check printing text compares equal to a number or boolean it spells.
  if (typeof a !== typeof b && (typeof a === "string" || typeof b === "string"))
    return String(a) === String(b) && typeof a !== "object" && typeof b !== "object";
  return false;
}
