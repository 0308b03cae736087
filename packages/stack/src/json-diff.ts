import type { Difference, Json } from "./types.js";

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function child(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return IDENT.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

const isObject = (v: Json | undefined): v is { [key: string]: Json } =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** The value of an own key (never one inherited from Object.prototype). */
const own = (o: { [key: string]: Json }, k: string): Json | undefined =>
  Object.hasOwn(o, k) ? o[k] : undefined;

/**
 * The differences between `before` and `after`, in document order. With
 * `subset`, keys `after` has and `before` lacks are not differences (a
 * desired state names only what matters; a check may print more). Works at
 * any depth (no recursion).
 */
export function diffJson(
  before: Json | undefined,
  after: Json | undefined,
  options: { subset?: boolean } = {},
): Difference[] {
  const out: Difference[] = [];
  // Pairs still to compare, last first; `listItem`: an extra item of a list.
  type Pair = [a: Json | undefined, b: Json | undefined, path: string, listItem?: boolean];
  const todo: Pair[] = [[before, after, "$"]];
  while (todo.length > 0) {
    const [a, b, path, listItem] = todo.pop() as Pair;
    if (a === undefined && b === undefined) continue;
    if (b === undefined) {
      out.push({ path, kind: "missing", before: a as Json });
      continue;
    }
    if (a === undefined) {
      if (!options.subset || listItem) out.push({ path, kind: "extra", after: b });
      continue;
    }
    const next: Pair[] = [];
    if (isObject(a) && isObject(b)) {
      for (const k of Object.keys(a)) next.push([a[k], own(b, k), child(path, k)]);
      for (const k of Object.keys(b))
        if (!Object.hasOwn(a, k)) next.push([undefined, b[k], child(path, k)]);
    } else if (Array.isArray(a) && Array.isArray(b)) {
      const n = Math.max(a.length, b.length);
      for (let i = 0; i < n; i++) {
        // A list is compared whole in length: extra items count even in subset mode.
        if (i >= a.length) next.push([undefined, b[i] as Json, child(path, i), true]);
        else next.push([a[i], i < b.length ? b[i] : undefined, child(path, i)]);
      }
    } else {
      if (!sameScalar(a, b)) out.push({ path, kind: "changed", before: a, after: b });
      continue;
    }
    for (let i = next.length - 1; i >= 0; i--) todo.push(next[i] as Pair);
  }
  return out;
}

function sameScalar(a: Json, b: Json): boolean {
  if (a === b) return true;
  // A check printing text compares equal to a number or boolean it spells.
  if (typeof a !== typeof b && (typeof a === "string" || typeof b === "string"))
    return String(a) === String(b) && typeof a !== "object" && typeof b !== "object";
  return false;
}

/** How deep `value` nests (0 for a scalar), counted without recursion, stopping past `limit`. */
export function depthOf(value: unknown, limit: number): number {
  let max = 0;
  const todo: [unknown, number][] = [[value, 0]];
  while (todo.length > 0) {
    const [v, d] = todo.pop() as [unknown, number];
    if (typeof v !== "object" || v === null) continue;
    if (d + 1 > max) max = d + 1;
    if (max > limit) return max;
    for (const x of Array.isArray(v) ? v : Object.values(v)) todo.push([x, d + 1]);
  }
  return max;
}
