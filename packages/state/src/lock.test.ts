import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, waitFor, waitUntilPast } from "../test-support/temp.js";
import { isStateError, openState, type StateError, type StateStore } from "./index.js";

const tmp = tempDir();
const file = path.join(tmp.dir, "locks.db");
let store: StateStore;
let n = 0;
const fresh = () => store.withNamespace(`locks-${++n}`);

beforeAll(async () => {
  store = await openState({ path: file });
});
afterAll(async () => {
  await store.close();
  tmp.cleanup();
});

async function caught(p: Promise<unknown>): Promise<StateError> {
  try {
    await p;
  } catch (e) {
    if (isStateError(e)) return e;
    throw e;
  }
  throw new Error("expected a StateError");
}

describe("lock", () => {
  it("fails at once with SLOTH_LOCK_HELD naming the holder", async () => {
    const s = fresh();
    const lease = await s.lock("db", { owner: "deploy-1" });
    const started = performance.now();
    const err = await caught(s.lock("db"));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(err.code).toBe("SLOTH_LOCK_HELD");
    expect(err.message).toBe("cannot lock 'db': held by 'deploy-1'");
    expect(err.details).toMatchObject({ holder: "deploy-1", fencingToken: lease.fencingToken });
    await lease.release();
  });

  it("issues strictly increasing tokens across releases, breaks and reopening", async () => {
    const s = fresh();
    const tokens: number[] = [];
    for (let i = 0; i < 3; i++) {
      const lease = await s.lock("t");
      tokens.push(lease.fencingToken);
      await lease.release();
    }
    tokens.push((await s.lock("t")).fencingToken);
    await s.unlock("t", { force: true });
    const again = await openState({ path: file, namespace: s.namespace });
    tokens.push((await again.lock("t")).fencingToken);
    await again.close();
    expect(tokens).toEqual([1, 2, 3, 4, 5]);
  });

  it("extends the same owner's lease and keeps its token", async () => {
    const s = fresh();
    const a = await s.lock("r", { owner: "me", ttl: 1000 });
    const b = await s.lock("r", { owner: "me", ttl: 60_000 });
    expect(b.fencingToken).toBe(a.fencingToken);
    expect(b.expiresAt.getTime()).toBeGreaterThan(a.expiresAt.getTime());
    expect((await s.inspect("r"))?.expiresAt).toEqual(b.expiresAt);
    await b.release();
  });

  it("lets an expired lease be taken over with a larger token", async () => {
    const s = fresh();
    const old = await s.lock("x", { ttl: 30 });
    await waitUntilPast(old.expiresAt.getTime());
    const next = await s.lock("x");
    expect(next.fencingToken).toBeGreaterThan(old.fencingToken);
    expect((await caught(old.extend())).code).toBe("SLOTH_LOCK_LOST");
    expect((await caught(old.release())).code).toBe("SLOTH_LOCK_LOST");
    expect((await s.inspect("x"))?.holder).toBe(next.owner);
    await next.release();
  });

  it("aborts lease.signal when the TTL passes without renewal", async () => {
    const s = fresh();
    const lease = await s.lock("w", { ttl: 40 });
    await waitFor(() => lease.signal.aborted);
    expect(isStateError(lease.signal.reason, "SLOTH_LOCK_LOST")).toBe(true);
  });

  it("keeps an auto-renewed lease alive past its TTL", async () => {
    const s = fresh();
    // A TTL long enough that a loaded machine's scheduling hiccups cannot expire it.
    const lease = await s.lock("ar", { ttl: 400, autoRenew: true });
    const first = lease.expiresAt.getTime();
    await waitFor(() => lease.expiresAt.getTime() > first + 500);
    expect(lease.signal.aborted).toBe(false);
    expect((await s.inspect("ar"))?.fencingToken).toBe(lease.fencingToken);
    await lease.release();
  });

  it("aborts an auto-renewed lease when the lock is broken", async () => {
    const s = fresh();
    const lease = await s.lock("br", { ttl: 90, autoRenew: true });
    const broken = await s.unlock("br", { force: true });
    expect(broken?.fencingToken).toBe(lease.fencingToken);
    await waitFor(() => lease.signal.aborted);
    expect(await s.inspect("br")).toBeUndefined();
  });

  it("waits for a release when waitMs allows", async () => {
    const s = fresh();
    const held = await s.lock("q");
    const waiting = s.lock("q", { waitMs: 10_000 });
    setTimeout(() => void held.release(), 50);
    const got = await waiting;
    expect(got.fencingToken).toBe(held.fencingToken + 1);
    await got.release();
  });

  it("waits for an expiry when the holder never releases", async () => {
    const s = fresh();
    const held = await s.lock("e", { ttl: 80 });
    const got = await s.lock("e", { waitMs: "10s" });
    expect(Date.now()).toBeGreaterThanOrEqual(held.expiresAt.getTime());
    await got.release();
  });

  it("gives up after waitMs, and stops waiting on abort", async () => {
    const s = fresh();
    const held = await s.lock("g");
    const err = await caught(s.lock("g", { waitMs: 60 }));
    expect(err.code).toBe("SLOTH_LOCK_HELD");
    expect(err.message).toMatch(/waited \d+ ms/);
    const ac = new AbortController();
    const p = s.lock("g", { waitMs: 60_000, signal: ac.signal });
    setTimeout(() => ac.abort(), 30);
    expect((await caught(p)).code).toBe("SLOTH_CANCELLED");
    await held.release();
  });

  it("checks the owner on unlock, and release is idempotent", async () => {
    const s = fresh();
    const lease = await s.lock("o", { owner: "alice" });
    expect((await caught(s.unlock("o", { owner: "bob" }))).code).toBe("SLOTH_LOCK_HELD");
    expect((await s.unlock("o", { owner: "alice" }))?.holder).toBe("alice");
    expect(await s.unlock("o", { force: true })).toBeUndefined();
    expect((await caught(lease.release())).code).toBe("SLOTH_LOCK_LOST");
    await lease.release();
  });

  it("releases on `await using`, even when the block throws", async () => {
    const s = fresh();
    const run = async () => {
      await using lease = await s.lock("u");
      expect(await s.inspect("u")).toMatchObject({ fencingToken: lease.fencingToken });
      throw new Error("boom");
    };
    await expect(run()).rejects.toThrow("boom");
    expect(await s.inspect("u")).toBeUndefined();
  });

  it("withLock passes the lease signal and releases after", async () => {
    const s = fresh();
    const result = await s.withLock("wl", async (signal, lease) => {
      expect(signal).toBe(lease.signal);
      expect(signal.aborted).toBe(false);
      return lease.fencingToken * 10;
    });
    expect(result).toBe(10);
    expect(await s.inspect("wl")).toBeUndefined();
    await expect(s.withLock("wl", () => Promise.reject(new Error("inner")))).rejects.toThrow(
      "inner",
    );
    expect(await s.inspect("wl")).toBeUndefined();
  });

  it("withLock rejects with SLOTH_LOCK_LOST when the lock was lost while fn ran", async () => {
    const s = fresh();
    let other = 0;
    const run = s.withLock("lost", async () => {
      // Someone breaks the lock and another holder runs meanwhile.
      await s.unlock("lost", { force: true });
      const intruder = await s.lock("lost");
      other = intruder.fencingToken;
      await intruder.release();
      return "done";
    });
    await expect(run).rejects.toMatchObject({ code: "SLOTH_LOCK_LOST" });
    expect(other).toBe(2);
    expect(await s.inspect("lost")).toBeUndefined();
    // fn's own failure still wins over the loss.
    const failing = s.withLock("lost", async () => {
      await s.unlock("lost", { force: true });
      throw new Error("fn failed");
    });
    await expect(failing).rejects.toThrow("fn failed");
  });

  it("inspect shows holder, token, acquired and expiry", async () => {
    const s = fresh();
    const lease = await s.lock("i", { owner: "ci-42", ttl: "1m" });
    expect(await s.inspect("i")).toEqual({
      namespace: s.namespace,
      name: "i",
      holder: "ci-42",
      fencingToken: lease.fencingToken,
      acquiredAt: lease.acquiredAt,
      expiresAt: lease.expiresAt,
    });
    await lease.release();
    expect(await s.inspect("i")).toBeUndefined();
  });

  it("fails a lease's release with SLOTH_STATE_CLOSED once its store is closed", async () => {
    const own = await openState({ path: file });
    const lease = await own.lock("closing", { autoRenew: true, ttl: 200 });
    await own.close();
    expect((await caught(lease.release())).code).toBe("SLOTH_STATE_CLOSED");
  });

  it("gives exactly one of many concurrent contenders the lock", async () => {
    const s = fresh();
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => s.lock("race")));
    const won = results.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
  });
});
