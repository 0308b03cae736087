import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { connect, createCertificateAuthority, isSlothError, issueCertificate } from "@sloth/client";
import { StateService } from "@sloth/proto";
import {
  connectState,
  isStateError,
  type JsonValue,
  openState,
  type StateError,
  type StateStore,
} from "@sloth/state";
import { startTestMaster, type TestMaster } from "@sloth/testkit";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// One master for the file; the same behaviour suite runs on a local file and over the network.
let tm: TestMaster;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-state-svc-"));
const opened: StateStore[] = [];

async function remote(namespace?: string, token = tm.token): Promise<StateStore> {
  const s = await connectState({ master: tm.address, token, namespace });
  opened.push(s);
  return s;
}

beforeAll(async () => {
  tm = await startTestMaster();
});
afterAll(async () => {
  for (const s of opened) await s.close();
  await tm.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function caught(p: Promise<unknown>): Promise<StateError> {
  try {
    await p;
  } catch (e) {
    if (isSlothError(e)) return e as unknown as StateError;
    throw e;
  }
  throw new Error("expected an error");
}

const sleepPast = async (t: number) => {
  while (Date.now() <= t) await new Promise((r) => setTimeout(r, Math.max(1, t - Date.now() + 1)));
};

let n = 0;
describe.each([
  [
    "file",
    async () => {
      const s = await openState({ path: path.join(tmp, "local.db"), durability: "normal" });
      opened.push(s);
      return s;
    },
  ],
  ["network", () => remote()],
] as const)("a %s store", (_kind, open) => {
  let base: StateStore;
  const fresh = () => base.withNamespace(`ns-${++n}`);
  beforeAll(async () => {
    base = await open();
  });

  it("round-trips JSON values, null, absence, lists and namespaces", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1, maxLength: 20 }), fc.jsonValue(), async (k, v) => {
        const s = fresh();
        await s.set(k, v as JsonValue);
        expect(await s.get(k)).toEqual(JSON.parse(JSON.stringify(v)));
      }),
      { numRuns: 30 },
    );
    const [s, t] = [fresh(), fresh()];
    await s.set("k", null);
    expect(await s.get("k")).toBeNull();
    expect(await s.has("k")).toBe(true);
    expect(await t.has("k")).toBe(false);
    for (const k of ["b/2", "a", "b/1"]) await s.set(k, k, { ttl: "1h" });
    expect((await s.list({ prefix: "b/" })).map((e) => e.key)).toEqual(["b/1", "b/2"]);
    expect((await s.list({ limit: 2 })).map((e) => e.key)).toEqual(["a", "b/1"]);
    expect((await s.getEntry("a"))?.expiresAt).toBeInstanceOf(Date);
    expect(await s.delete("k")).toBe(true);
    expect(await s.delete("k")).toBe(false);
  });

  it("expires keys and counts with increment", async () => {
    const s = fresh();
    await s.set("short", 1, { ttl: 30 });
    await sleepPast(((await s.getEntry("short"))?.expiresAt?.getTime() ?? 0) + 1);
    expect(await s.get("short")).toBeUndefined();
    expect(await s.increment("n")).toBe(1);
    expect(await s.increment("n", 2.5)).toBe(3.5);
    await s.set("text", "7");
    const err = await caught(s.increment("text"));
    expect(err.code).toBe("SLOTH_STATE_NOT_A_NUMBER");
    expect(isStateError(err, "SLOTH_STATE_NOT_A_NUMBER")).toBe(true);
    expect(err.message).toMatch(/^cannot increment key 'text' in namespace 'ns-\d+': its value/);
  });

  it("compare-and-swaps structurally, with absent distinct from null", async () => {
    const s = fresh();
    expect(await s.cas("k", null, 1)).toEqual({ ok: false, current: undefined });
    expect(await s.cas("k", undefined, { a: 1, b: [2] })).toEqual({
      ok: true,
      current: { a: 1, b: [2] },
    });
    expect((await s.cas("k", { b: [2], a: 1 }, null)).ok).toBe(true);
    expect(await s.cas("k", undefined, 5)).toEqual({ ok: false, current: null });
    expect(await s.cas("k", null, undefined)).toEqual({ ok: true, current: undefined });
    expect(await s.has("k")).toBe(false);
  });

  it("locks: held fails at once naming the holder, tokens grow, same owner extends", async () => {
    const s = fresh();
    const a = await s.lock("db", { owner: "deploy-1", ttl: 1000 });
    const err = await caught(s.lock("db"));
    expect(err.code).toBe("SLOTH_LOCK_HELD");
    expect(err.message).toBe("cannot lock 'db': held by 'deploy-1'");
    expect(err.details).toMatchObject({ holder: "deploy-1", fencingToken: a.fencingToken });
    const again = await s.lock("db", { owner: "deploy-1", ttl: 60_000 });
    expect(again.fencingToken).toBe(a.fencingToken);
    expect(await s.inspect("db")).toMatchObject({ holder: "deploy-1", expiresAt: again.expiresAt });
    await again.release();
    const b = await s.lock("db");
    expect(b.fencingToken).toBe(a.fencingToken + 1);
    await s.unlock("db", { force: true });
    expect((await caught(b.release())).code).toBe("SLOTH_LOCK_LOST");
    expect((await s.lock("db")).fencingToken).toBe(a.fencingToken + 2);
  });

  it("locks: waiting, takeover after expiry, owner checks, withLock", async () => {
    const s = fresh();
    const held = await s.lock("q");
    const waiting = s.lock("q", { waitMs: 10_000 });
    setTimeout(() => void held.release(), 50);
    expect((await waiting).fencingToken).toBe(held.fencingToken + 1);
    const old = await s.lock("x", { ttl: 40 });
    const next = await s.lock("x", { waitMs: "10s" });
    expect(next.fencingToken).toBeGreaterThan(old.fencingToken);
    expect((await caught(old.extend())).code).toBe("SLOTH_LOCK_LOST");
    const o = await s.lock("o", { owner: "alice" });
    const wrong = await caught(s.unlock("o", { owner: "bob" }));
    expect(wrong.code).toBe("SLOTH_LOCK_HELD");
    expect(wrong.message).toBe("cannot unlock 'o': it is held by 'alice'");
    expect(wrong.details).toMatchObject({ holder: "alice", name: "o" });
    expect(wrong.hint).toBe("only its owner can release it; break it with force");
    await o.release();
    expect(
      await s.withLock("wl", async (signal, l) => (signal.aborted ? -1 : l.fencingToken)),
    ).toBe(1);
    expect(await s.inspect("wl")).toBeUndefined();
    const ac = new AbortController();
    const p = s.lock("q", { waitMs: 60_000, signal: ac.signal });
    setTimeout(() => ac.abort(), 30);
    expect((await caught(p)).code).toBe("SLOTH_CANCELLED");
  });

  it("rejects bad inputs with SLOTH_INVALID_ARGUMENT", async () => {
    const s = fresh();
    for (const call of [
      () => s.set("", 1),
      () => s.set("k", Number.NaN),
      () => s.set("k", 1, { ttl: -5 }),
      () => s.lock(""),
    ]) {
      expect((await caught(call())).code).toBe("SLOTH_INVALID_ARGUMENT");
    }
  });
});

describe("StateService on the master", () => {
  it("keeps its file in <data dir>/master/state.db", async () => {
    const s = await remote("where");
    await s.set("k", 1);
    expect(fs.existsSync(path.join(tm.dataDir, "master", "state.db"))).toBe(true);
  });

  it("refuses calls without the cluster token or with a wrong one", async () => {
    const wrong = await remote("auth", "not-the-token");
    const err = await caught(wrong.get("k"));
    expect(err.code).toBe("SLOTH_UNAUTHENTICATED");
    const conn = connect({ address: tm.address });
    try {
      const c = createClient(StateService, conn.transport);
      const e = await c.get({ namespace: "default", key: "k" }).catch((x: unknown) => x);
      expect(ConnectError.from(e).code).toBe(Code.Unauthenticated);
    } finally {
      conn.close();
    }
  });

  it("checks raw calls that bypass the client facade", async () => {
    const conn = connect({ address: tm.address, token: tm.token });
    try {
      const c = createClient(StateService, conn.transport);
      const bad = [
        c.set({ namespace: "", key: "k", valueJson: "1" }),
        c.set({ namespace: "n", key: "k", valueJson: "{nope" }),
        c.set({ namespace: "n", key: "k", valueJson: "1e999" }),
        c.tryLock({ namespace: "n", name: "l", owner: "o", ttlMs: 0n }),
      ];
      for (const p of bad) {
        const e = ConnectError.from(await p.catch((x: unknown) => x));
        expect(e.code).toBe(Code.InvalidArgument);
        expect(e.metadata.get("sloth-error-code")).toBe("SLOTH_INVALID_ARGUMENT");
      }
    } finally {
      conn.close();
    }
  });

  it("gives two network clients the lock in turn with growing fencing tokens", async () => {
    const [a, b] = [await remote("contend"), await remote("contend")];
    const seen: number[] = [];
    let inside = 0;
    const worker = async (s: StateStore) => {
      for (let i = 0; i < 15; i++) {
        await s.withLock(
          "shared",
          async (_signal, lease) => {
            inside++;
            expect(inside).toBe(1);
            seen.push(lease.fencingToken);
            await s.increment("counter");
            await new Promise((r) => setTimeout(r, 1));
            inside--;
          },
          { waitMs: 20_000, ttl: 5000 },
        );
      }
    };
    await Promise.all([worker(a), worker(b)]);
    expect(seen).toHaveLength(30);
    expect(seen).toEqual([...seen].sort((x, y) => x - y));
    expect(new Set(seen).size).toBe(30);
    expect(await a.get("counter")).toBe(30);
  });

  it("works over mTLS, and a client without a certificate is refused", async () => {
    const ca = await createCertificateAuthority();
    const server = await issueCertificate({ ca, name: "master", sans: ["127.0.0.1"] });
    const client = await issueCertificate({ ca, name: "ci", sans: ["127.0.0.1"] });
    const secure = await startTestMaster({ tls: { ...server, ca: ca.cert } });
    const s = await connectState({
      master: secure.address,
      token: secure.token,
      tls: { ca: ca.cert, ...client },
    });
    opened.push(s);
    await s.set("k", "over tls");
    expect(await s.get("k")).toBe("over tls");
    const anonymous = await connectState({
      master: secure.address,
      token: secure.token,
      tls: { ca: ca.cert },
    });
    opened.push(anonymous);
    expect((await caught(anonymous.get("k"))).code).toBe("SLOTH_TLS");
  });

  it("reports an unreachable master as SLOTH_UNREACHABLE", async () => {
    const s = await connectState({ master: "127.0.0.1:1", token: "t", callTimeoutMs: 5000 });
    try {
      expect((await caught(s.get("k"))).code).toBe("SLOTH_UNREACHABLE");
    } finally {
      await s.close();
    }
  });
});
