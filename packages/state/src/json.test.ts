import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeJson, jsonEqual } from "./json.js";

function shuffleKeys(v: unknown, seed: number): unknown {
  if (Array.isArray(v)) return v.map((x) => shuffleKeys(x, seed));
  if (v === null || typeof v !== "object") return v;
  const keys = Object.keys(v);
  const rotated = keys
    .slice(seed % Math.max(1, keys.length))
    .concat(keys.slice(0, seed % Math.max(1, keys.length)));
  const out: Record<string, unknown> = {};
  for (const k of rotated.reverse()) {
    Object.defineProperty(out, k, {
      value: shuffleKeys((v as Record<string, unknown>)[k], seed),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

describe("jsonEqual", () => {
  it("ignores object key order at any depth", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(), (v, seed) => {
        expect(jsonEqual(v, shuffleKeys(v, seed))).toBe(true);
      }),
    );
  });

  it("tells different values apart", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (a, b) => {
        const same = JSON.stringify(sortDeep(a)) === JSON.stringify(sortDeep(b));
        expect(jsonEqual(a, b)).toBe(same);
      }),
    );
  });

  it("does not confuse arrays with objects or null with absence", () => {
    expect(jsonEqual([], {})).toBe(false);
    expect(jsonEqual({ 0: 1 }, [1])).toBe(false);
    expect(jsonEqual({ a: null }, {})).toBe(false);
    expect(jsonEqual(null, undefined)).toBe(false);
  });
});

function sortDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortDeep);
  if (v === null || typeof v !== "object") return Object.is(v, -0) ? 0 : v;
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .map((k) => [k, sortDeep((v as Record<string, unknown>)[k])]),
  );
}

describe("encodeJson", () => {
  it("accepts every JSON value", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(JSON.parse(encodeJson(v, "k"))).toEqual(JSON.parse(JSON.stringify(v)));
      }),
    );
  });

  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  it.each([
    ["undefined", undefined, /undefined is not JSON/],
    ["a function", () => 1, /function is not JSON/],
    ["a symbol", Symbol("s"), /symbol is not JSON/],
    ["a bigint", 1n, /bigint is not JSON/],
    ["NaN", Number.NaN, /NaN is not a finite number/],
    ["Infinity", Number.POSITIVE_INFINITY, /Infinity is not a finite number/],
    ["a Date", new Date(0), /a Date is not a plain JSON object/],
    ["a Map", new Map(), /a Map is not a plain JSON object/],
    ["a nested undefined", { a: [1, undefined] }, /\(at \$\.a\[1\]\)/],
    ["a cycle", cyclic, /contains a cycle/],
  ])("rejects %s", (_name, value, message) => {
    expect(() => encodeJson(value, "k")).toThrow(message);
  });

  it("accepts a shared, acyclic sub-object", () => {
    const shared = { x: 1 };
    expect(encodeJson({ a: shared, b: shared }, "k")).toBe('{"a":{"x":1},"b":{"x":1}}');
  });
});
