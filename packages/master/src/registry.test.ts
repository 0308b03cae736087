import crypto from "node:crypto";
import path from "node:path";
import { isSlothError } from "@sloth/client";
import { cleanup, tempDir } from "@sloth/testkit";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { AgentRegistry, type RegistrationInput } from "./registry.js";

afterEach(cleanup);

function input(
  name: string,
  secret: Uint8Array,
  extra: Partial<RegistrationInput> = {},
): RegistrationInput {
  return {
    name,
    address: "127.0.0.1:50051",
    reportAddress: "",
    bindAddress: "127.0.0.1",
    port: 50051,
    version: "1.0.0",
    labels: { role: "web" },
    facts: { hostname: "h", cpus: 2 },
    secret,
    ...extra,
  };
}

const liveness = { ttlMs: 1000, graceMs: 500 };

describe("AgentRegistry", () => {
  it("persists registrations across reopen, with only a hash of the secret", () => {
    const file = path.join(tempDir(), "registry.db");
    const secret = crypto.randomBytes(32);
    const r1 = new AgentRegistry(file, liveness);
    r1.register(input("web-1", secret), "active", "");
    r1.close();
    const r2 = new AgentRegistry(file, liveness);
    const a = r2.get("web-1");
    expect(a).toMatchObject({
      name: "web-1",
      status: "active",
      labels: { role: "web" },
      facts: { cpus: 2 },
    });
    r2.close();
    const raw = new Database(file).prepare("SELECT * FROM agents").all() as Array<
      Record<string, unknown>
    >;
    expect(raw).toHaveLength(1);
    expect(JSON.stringify(raw)).not.toContain(secret.toString("hex"));
    expect(raw[0]?.secret_hash).toBe(crypto.createHash("sha256").update(secret).digest("hex"));
  });

  it("refuses a name held under another secret, and accepts the holder again", () => {
    const r = new AgentRegistry(path.join(tempDir(), "r.db"), liveness);
    const secret = crypto.randomBytes(32);
    r.register(input("db", secret), "active", "");
    let err: unknown;
    try {
      r.register(input("db", crypto.randomBytes(32), { address: "10.0.0.9:1" }), "active", "");
    } catch (e) {
      err = e;
    }
    expect(isSlothError(err, "SLOTH_AGENT_NAME_HELD")).toBe(true);
    expect((err as Error).message).toBe("agent name 'db' is held by another agent");
    expect(r.get("db")?.address).toBe("127.0.0.1:50051");
    expect(() => r.register(input("db", secret), "active", "")).not.toThrow();
    r.close();
  });

  it("rejects invalid names", () => {
    const r = new AgentRegistry(path.join(tempDir(), "r.db"), liveness);
    for (const bad of ["", "a b", "../x", "-x", "x".repeat(64)]) {
      expect(() => r.register(input(bad, crypto.randomBytes(32)), "active", "")).toThrow(
        /invalid agent name/,
      );
    }
    r.close();
  });

  it("marks silent agents inactive after ttl + grace and active again on heartbeat", () => {
    const r = new AgentRegistry(path.join(tempDir(), "r.db"), liveness);
    const secret = crypto.randomBytes(32);
    const events: string[] = [];
    r.on("status", (a, s) => events.push(`${a.name}:${s}`));
    const a = r.register(input("a", secret), "active", "");
    r.tick(a.lastSeen + 1400);
    expect(r.get("a")?.status).toBe("active");
    r.tick(a.lastSeen + 1600);
    expect(r.get("a")?.status).toBe("inactive");
    expect(r.get("a")?.statusReason).toMatch(/no heartbeat for \d+s/);
    expect(r.heartbeat("a", secret, 0)?.status).toBe("active");
    expect(events).toEqual(["a:inactive", "a:active"]);
    r.close();
  });

  it("answers heartbeats of unknown agents or wrong secrets with undefined", () => {
    const r = new AgentRegistry(path.join(tempDir(), "r.db"), liveness);
    const secret = crypto.randomBytes(32);
    expect(r.heartbeat("ghost", secret, 0)).toBeUndefined();
    r.register(input("a", secret), "active", "");
    expect(r.heartbeat("a", crypto.randomBytes(32), 0)).toBeUndefined();
    r.close();
  });

  it("flushes last-seen times in batches and keeps them across reopen", () => {
    const file = path.join(tempDir(), "r.db");
    const r = new AgentRegistry(file, liveness);
    const secret = crypto.randomBytes(32);
    r.register(input("a", secret), "active", "");
    const seen = r.heartbeat("a", secret, 2)!.lastSeen;
    r.close();
    const r2 = new AgentRegistry(file, liveness);
    expect(r2.get("a")?.lastSeen).toBe(seen);
    r2.close();
  });

  it("deletes agents and emits removal", () => {
    const r = new AgentRegistry(path.join(tempDir(), "r.db"), liveness);
    const removed: string[] = [];
    r.on("removed", (a) => removed.push(a.name));
    r.register(input("a", crypto.randomBytes(32)), "active", "");
    expect(r.delete("a")?.name).toBe("a");
    expect(r.delete("a")).toBeUndefined();
    expect(removed).toEqual(["a"]);
    expect(r.list()).toEqual([]);
    r.close();
  });

  it("stretches the heartbeat interval and the TTL in large clusters", () => {
    const r = new AgentRegistry(path.join(tempDir(), "r.db"), liveness);
    expect(r.heartbeatInterval(5000)).toBe(5000);
    for (let i = 0; i < 3000; i++)
      r.register(input(`n-${i}`, crypto.randomBytes(32)), "active", "");
    expect(r.heartbeatInterval(5000)).toBe(12_000);
    expect(r.heartbeatInterval(5000, 100)).toBe(30_000);
    const a = r.get("n-0")!;
    r.stretchTtl(12_000);
    r.tick(a.lastSeen + 1600);
    expect(r.get("n-0")?.status).toBe("active");
    r.tick(a.lastSeen + 3 * 12_000 + 600);
    expect(r.get("n-0")?.status).toBe("inactive");
    r.close();
  });
});
