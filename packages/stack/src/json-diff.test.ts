import { expect, it } from "vitest";
import { diffJson } from "./json-diff.js";
import type { Json } from "./types.js";

it("compares values nested far deeper than the call stack allows", () => {
  let a: Json = 1;
  let b: Json = 2;
  for (let i = 0; i < 20_000; i++) {
    a = [a];
    b = [b];
  }
  const d = diffJson(a, b);
  expect(d).toHaveLength(1);
  expect(d[0]?.kind).toBe("changed");
  expect(d[0]?.path.length).toBe(1 + 3 * 20_000);
});

it("lists differences in document order; extra list items count in subset mode", () => {
  expect(
    diffJson(
      { a: 1, b: [1], c: { d: 1 } },
      { a: 2, b: [1, 2], c: { d: 1, e: 3 }, z: 0 },
      { subset: true },
    ),
  ).toEqual([
    { path: "$.a", kind: "changed", before: 1, after: 2 },
    { path: "$.b[1]", kind: "extra", after: 2 },
  ]);
  expect(diffJson({ "a b": "1" }, { "a b": 1 })).toEqual([]);
});
