import fs from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, waitUntilPast } from "../test-support/temp.js";
import { connectState, isStateError, type JsonValue, openState, type StateStore } from "./index.js";

const tmp = tempDir();
let store: StateStore;
let nsCounter = 0;
/** A fresh namespace per property run keeps runs independent on one file. */
const fresh = () => store.withNamespace(`run-${++nsCounter}`);
/** What JSON makes of a value (-0 becomes 0). */
const normal = (v: unknown) => JSON.parse(JSON.stringify(v)) as JsonValue;

beforeAll(async () => {
  store = await openState({ path: path.join(tmp.dir, "state.db"), durability: "normal" });
});
afterAll(async () => {
  await store.close();
  tmp.cleanup();
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isStateError(e)) return e.code;
    throw e;
  }
  throw new Error("expected a StateError");
}

describe("keys and values", () => {
  it("round-trips every JSON value", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1 }), fc.jsonValue(), async (k, v) => {
        const s = fresh();
        await s.set(k, v as JsonValue);
        expect(await s.get(k)).toEqual(normal(v));
        expect(await s.has(k)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it("treats null as a value and undefined as absence", async () => {
    const s = fresh();
    expect(await s.get("k")).toBeUndefined();
    await s.set("k", null);
    expect(await s.get("k")).toBeNull();
    expect(await s.has("k")).toBe(true);
    expect(await s.delete("k")).toBe(true);
    expect(await s.delete("k")).toBe(false);
    expect(await s.has("k")).toBe(false);
  });

  it("lists by prefix in key order, with a limit", async () => {
    const s = fresh();
    for (const k of ["b/2", "a", "b/1", "b", "c", "b/\u{1F600}", "bb"]) await s.set(k, k);
    const keys = async (prefix?: string, limit?: number) =>
      (await s.list({ prefix, limit })).map((e) => e.key);
    expect(await keys("b/")).toEqual(["b/1", "b/2", "b/\u{1F600}"]);
    expect(await keys("b")).toEqual(["b", "b/1", "b/2", "b/\u{1F600}", "bb"]);
    expect(await keys()).toHaveLength(7);
    expect(await keys("b", 2)).toEqual(["b", "b/1"]);
    expect(await keys("zzz")).toEqual([]);
  });

  it("keeps namespaces apart for keys and locks", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.boolean(), fc.constantFrom("a", "b", "c"), fc.integer()), {
          maxLength: 20,
        }),
        async (ops) => {
          const [x, y] = [fresh(), fresh()];
          const model = [new Map<string, number>(), new Map<string, number>()];
          for (const [first, k, v] of ops) {
            await (first ? x : y).set(k, v);
            model[first ? 0 : 1]?.set(k, v);
          }
          for (const [i, s] of [x, y].entries()) {
            const got = new Map((await s.list()).map((e) => [e.key, e.value]));
            expect(got).toEqual(model[i]);
          }
        },
      ),
      { numRuns: 50 },
    );
    const [x, y] = [fresh(), fresh()];
    const lease = await x.lock("same-name");
    const other = await y.lock("same-name");
    expect(other.fencingToken).toBe(1);
    await lease.release();
    await other.release();
  });
});

describe("TTL", () => {
  it("never returns an expired key, from any read", async () => {
    const s = fresh();
    await s.set("short", 1, { ttl: 30 });
    await s.set("long", 2, { ttl: "1h" });
    const entry = await s.getEntry("short");
    expect(entry?.expiresAt).toBeInstanceOf(Date);
    await waitUntilPast(entry?.expiresAt?.getTime() ?? 0);
    expect(await s.get("short")).toBeUndefined();
    expect(await s.has("short")).toBe(false);
    expect(await s.delete("short")).toBe(false);
    expect((await s.list()).map((e) => e.key)).toEqual(["long"]);
    expect(await s.cas("short", undefined, 5)).toEqual({ ok: true, current: 5 });
  });

  it("restarts an expired counter at 0 and keeps a live counter's TTL", async () => {
    const s = fresh();
    await s.set("n", 41, { ttl: "1h" });
    const before = await s.getEntry("n");
    expect(await s.increment("n")).toBe(42);
    expect((await s.getEntry("n"))?.expiresAt).toEqual(before?.expiresAt);
    await s.set("m", 10, { ttl: 20 });
    await waitUntilPast(((await s.getEntry("m"))?.expiresAt?.getTime() ?? 0) + 1);
    expect(await s.increment("m", 2)).toBe(2);
    expect((await s.getEntry("m"))?.expiresAt).toBeUndefined();
  });

  it("clears a TTL on a plain set and purges expired rows", async () => {
    const s = fresh();
    await s.set("k", 1, { ttl: "1h" });
    await s.set("k", 2);
    expect((await s.getEntry("k"))?.expiresAt).toBeUndefined();
    await s.set("gone", 1, { ttl: 1 });
    await waitUntilPast(Date.now() + 2);
    expect(await s.purgeExpired()).toBeGreaterThanOrEqual(1);
  });
});

describe("increment", () => {
  it("starts a missing key at 0 and adds any finite amount", async () => {
    const s = fresh();
    expect(await s.increment("n")).toBe(1);
    expect(await s.increment("n", -3)).toBe(-2);
    expect(await s.increment("n", 0.5)).toBe(-1.5);
  });

  it("refuses a count past 2^53 - 1, where it would stop adding up", async () => {
    const s = fresh();
    await s.set("big", Number.MAX_SAFE_INTEGER - 1);
    expect(await s.increment("big")).toBe(Number.MAX_SAFE_INTEGER);
    expect(await code(s.increment("big"))).toBe("SLOTH_INVALID_ARGUMENT");
    expect(await s.get("big")).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("refuses a non-number with SLOTH_STATE_NOT_A_NUMBER and leaves it unchanged", async () => {
    const s = fresh();
    await s.set("k", "7");
    expect(await code(s.increment("k"))).toBe("SLOTH_STATE_NOT_A_NUMBER");
    expect(await s.get("k")).toBe("7");
  });
});

describe("compare-and-swap", () => {
  const pool = fc.constantFrom<JsonValue>(
    null,
    0,
    1,
    "a",
    [1, 2],
    { a: 1, b: [true] },
    { b: [true], a: 1 },
    {},
  );

  it("agrees with a model under random operations", async () => {
    type Op = {
      kind: "set" | "del" | "cas-cur" | "cas-any";
      v: JsonValue;
      w: JsonValue;
      absent: boolean;
    };
    const op = fc.record({
      kind: fc.constantFrom("set", "del", "cas-cur", "cas-any"),
      v: pool,
      w: pool,
      absent: fc.boolean(),
    }) as fc.Arbitrary<Op>;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
        const s = fresh();
        let model: JsonValue | undefined;
        for (const o of ops) {
          if (o.kind === "set") {
            await s.set("k", o.v);
            model = o.v;
          } else if (o.kind === "del") {
            expect(await s.delete("k")).toBe(model !== undefined);
            model = undefined;
          } else {
            const expected = o.kind === "cas-cur" ? model : o.absent ? undefined : o.w;
            const matches =
              expected === undefined
                ? model === undefined
                : model !== undefined && sameJson(model, expected);
            const r = await s.cas("k", expected, o.v);
            if (matches) model = o.v;
            expect(r).toEqual({ ok: matches, current: model });
          }
          expect(await s.get("k")).toEqual(model);
        }
      }),
      { numRuns: 100 },
    );
  });

  it("compares structurally, ignoring key order", async () => {
    const s = fresh();
    await s.set("k", { a: 1, b: { c: [1, { d: 2, e: 3 }] } });
    expect((await s.cas("k", { b: { c: [1, { e: 3, d: 2 }] }, a: 1 }, "next")).ok).toBe(true);
    expect((await s.cas("k", "nope", "x")).current).toBe("next");
  });

  it("distinguishes absent from null, and deletes when next is undefined", async () => {
    const s = fresh();
    expect(await s.cas("k", null, 1)).toEqual({ ok: false, current: undefined });
    expect(await s.cas("k", undefined, null)).toEqual({ ok: true, current: null });
    expect(await s.cas("k", undefined, 1)).toEqual({ ok: false, current: null });
    expect(await s.cas("k", null, undefined)).toEqual({ ok: true, current: undefined });
    expect(await s.has("k")).toBe(false);
  });

  it("applies a TTL to the new value", async () => {
    const s = fresh();
    await s.cas("k", undefined, 1, { ttl: "1h" });
    expect((await s.getEntry("k"))?.expiresAt).toBeInstanceOf(Date);
  });
});

function sameJson(a: JsonValue, b: JsonValue): boolean {
  const sort = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sort)
      : v !== null && typeof v === "object"
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
          )
        : v;
  return JSON.stringify(sort(a)) === JSON.stringify(sort(b));
}

describe("bad inputs", () => {
  const bad = (v: unknown) => v as JsonValue;
  it.each([
    ["an empty key", (s: StateStore) => s.set("", 1)],
    ["a non-string key", (s: StateStore) => s.get(bad(42) as string)],
    ["a key with a lone surrogate", (s: StateStore) => s.set("a\uD800", 1)],
    ["a very long key", (s: StateStore) => s.set("k".repeat(2000), 1)],
    ["undefined as a value", (s: StateStore) => s.set("k", bad(undefined))],
    ["a Date value", (s: StateStore) => s.set("k", bad(new Date()))],
    ["NaN", (s: StateStore) => s.set("k", Number.NaN)],
    ["a negative TTL", (s: StateStore) => s.set("k", 1, { ttl: -5 })],
    ["a zero TTL", (s: StateStore) => s.set("k", 1, { ttl: 0 })],
    ["a malformed TTL", (s: StateStore) => s.set("k", 1, { ttl: "soon" })],
    ["a non-finite increment", (s: StateStore) => s.increment("k", Number.POSITIVE_INFINITY)],
    [
      "a non-JSON cas expectation",
      (s: StateStore) =>
        s.cas(
          "k",
          bad(() => 1),
          1,
        ),
    ],
    ["an empty lock name", (s: StateStore) => s.lock("")],
    ["a negative waitMs", (s: StateStore) => s.lock("l", { waitMs: -1 })],
    ["an unlock without force or owner", (s: StateStore) => s.unlock("l", {})],
    ["a negative list limit", (s: StateStore) => s.list({ limit: -1 })],
    ["a fractional list limit", (s: StateStore) => s.list({ limit: 1.5 })],
    ["a string list limit", (s: StateStore) => s.list({ limit: bad("2") as number })],
    ["a TTL past 100 years", (s: StateStore) => s.set("k", 1, { ttl: 1e300 })],
    ["an owner over 1,024 characters", (s: StateStore) => s.lock("l", { owner: "o".repeat(2000) })],
    ["a numeric owner", (s: StateStore) => s.lock("l", { owner: bad(123) as string })],
  ])("rejects %s with SLOTH_INVALID_ARGUMENT", async (_name, call) => {
    expect(await code(call(fresh()))).toBe("SLOTH_INVALID_ARGUMENT");
  });

  it("rejects an empty namespace", () => {
    expect(() => store.withNamespace("")).toThrow(/invalid namespace/);
  });

  it("names the key and the path in a non-JSON error", async () => {
    await expect(fresh().set("cfg", bad({ a: [1, () => 2] }))).rejects.toThrow(
      "cannot store key 'cfg': a function is not JSON (at $.a[1])",
    );
  });

  it("fails with SLOTH_STATE_CLOSED after close", async () => {
    const t = tempDir();
    const s = await openState({ path: path.join(t.dir, "x.db") });
    await s.close();
    await s.close();
    expect(await code(s.get("k"))).toBe("SLOTH_STATE_CLOSED");
    t.cleanup();
  });

  it("creates the file with mode 0600 and rejects bad options", async () => {
    const t = tempDir();
    const file = path.join(t.dir, "sub", "x.db");
    const s = await openState({ path: file });
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    await s.close();
    for (const bad of [
      openState({ path: "" }),
      openState({ path: file, durability: "fast" as "full" }),
      openState({ path: file, busyTimeoutMs: -1 }),
      connectState({ master: "127.0.0.1:1", token: "" }),
      connectState({ master: "", token: "t" }),
    ]) {
      const e = await bad.then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(isStateError(e, "SLOTH_INVALID_ARGUMENT"), String(e)).toBe(true);
    }
    t.cleanup();
  });

  it("names the file and the fix when it cannot be opened, and leaves it as it was", async () => {
    const t = tempDir();
    const notDb = path.join(t.dir, "notes.txt");
    fs.writeFileSync(notDb, "x".repeat(4096));
    const blocker = path.join(t.dir, "plain-file");
    fs.writeFileSync(blocker, "");
    const cases: [string, RegExp][] = [
      [t.dir, /it is a directory/],
      [notDb, /it is not a SQLite database/],
      [path.join(blocker, "x.db"), /not a directory/],
    ];
    for (const [file, reason] of cases) {
      const e = await openState({ path: file }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(isStateError(e, "SLOTH_STATE_UNAVAILABLE")).toBe(true);
      const err = e as { message: string; hint?: string; details: Record<string, unknown> };
      expect(err.message).toContain(`cannot open state ${file}: `);
      expect(err.message).toMatch(reason);
      expect(err.hint).toMatch(/pass/);
      expect(err.details.path).toBe(file);
    }
    expect(fs.readFileSync(notDb, "utf8")).toBe("x".repeat(4096));
    t.cleanup();
  });

  it("finds a damaged page when it opens the file, instead of answering from it", async () => {
    const t = tempDir();
    const file = path.join(t.dir, "damaged.db");
    const s = await openState({ path: file });
    for (let i = 0; i < 2000; i++) await s.set(`key${i}`, "x".repeat(200));
    await s.close();
    // Garbage over a page in the middle, as a bad disk or a torn copy leaves it.
    const size = fs.statSync(file).size;
    const fd = fs.openSync(file, "r+");
    fs.writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, Math.floor(size / 8192) * 4096);
    fs.closeSync(fd);
    const e = await openState({ path: file }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isStateError(e, "SLOTH_STATE_UNAVAILABLE"), String(e)).toBe(true);
    expect((e as Error).message).toBe(`cannot open state ${file}: the database is corrupt`);
    t.cleanup();
  });
});
