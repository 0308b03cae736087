import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isStackError, openStackStore, type StackStore } from "./index.js";

let dir: string;
let file: string;
let store: StackStore;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-stack-"));
  file = path.join(dir, "stacks.db");
  store = openStackStore({ path: file });
});
afterEach(() => {
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    if (isStackError(e)) return e.code;
    throw e;
  }
  return "no error";
};

describe("stacks", () => {
  it("creates, lists, updates and deletes, keeping the audit trail", () => {
    store.create("network", { description: "VPC" });
    store.create("db", { dependsOn: ["network"] });
    expect(store.list().map((s) => s.name)).toEqual(["db", "network"]);
    expect(store.get("db")).toMatchObject({
      status: "created",
      dependsOn: ["network"],
      executionCount: 0,
    });
    expect(codeOf(() => store.create("db"))).toBe("SLOTH_STACK_EXISTS");
    expect(codeOf(() => store.get("nope"))).toBe("SLOTH_STACK_NOT_FOUND");
    expect(codeOf(() => store.create("../x"))).toBe("SLOTH_INVALID_ARGUMENT");
    store.update("network", { description: "the VPC" });
    expect(store.get("network").description).toBe("the VPC");
    // A dependency of another stack is not deleted without --force.
    expect(codeOf(() => store.delete("network"))).toBe("SLOTH_STACK_IN_USE");
    store.delete("db");
    store.delete("network");
    expect(store.list()).toEqual([]);
    const types = store.events({ stack: "db" }).map((e) => e.type);
    expect(types).toEqual(["stack.destroyed", "stack.created"]);
  });

  it("records executions and their state", () => {
    store.ensure("app");
    store.beginExecution("app", { runId: "r1" });
    expect(store.get("app").status).toBe("running");
    store.endExecution("app", {
      runId: "r1",
      status: "completed",
      state: { url: "http://x", n: 1 },
    });
    store.beginExecution("app", { runId: "r2" });
    const s = store.endExecution("app", { runId: "r2", status: "failed", message: "boom" });
    expect(s).toMatchObject({ status: "failed", executionCount: 2, lastRunId: "r2" });
    // A failed run without a state leaves the last one.
    expect(s.state).toEqual({ url: "http://x", n: 1 });
    expect(store.events({ stack: "app" })[0]).toMatchObject({
      type: "stack.execution.failed",
      severity: "error",
      message: "run r2 failed: boom",
    });
  });

  it("refuses dependency cycles and orders stacks dependencies first", () => {
    store.create("network");
    store.create("storage");
    store.create("database", { dependsOn: ["network", "storage"] });
    store.create("cache", { dependsOn: ["network"] });
    store.create("backend", { dependsOn: ["database", "cache"] });
    store.create("frontend", { dependsOn: ["backend"] });
    expect(store.order(["frontend", "backend", "database", "cache"])).toEqual([
      "database",
      "cache",
      "backend",
      "frontend",
    ]);
    expect(codeOf(() => store.update("network", { dependsOn: ["frontend"] }))).toBe(
      "SLOTH_STACK_DEPENDENCY_CYCLE",
    );
    expect(store.dependencies("backend")).toMatchObject({
      direct: ["database", "cache"],
      transitive: ["database", "cache", "network", "storage"],
      dependents: ["frontend"],
      missing: [],
    });
    // A dependency deleted with --force is reported missing.
    store.delete("storage", { force: true });
    expect(store.dependencies("database").missing).toEqual(["storage"]);
  });
});

describe("locks", () => {
  it("lets one holder in at a time and names the holder", () => {
    store.create("prod");
    const l = store.lock("prod", { lockedBy: "deploy-bot", reason: "v2", operation: "deploy" });
    try {
      store.lock("prod", { lockedBy: "alice" });
      expect.unreachable();
    } catch (e) {
      expect(isStackError(e, "SLOTH_STACK_LOCKED")).toBe(true);
      expect((e as Error).message).toMatch(/locked by deploy-bot since .* \(deploy: v2\)/);
    }
    // Someone else cannot release it; its holder can.
    expect(codeOf(() => store.unlock("prod", { lockedBy: "alice" }))).toBe("SLOTH_STACK_LOCKED");
    expect(store.unlock("prod", { lockId: l.lockId })).toBe(true);
    expect(store.unlock("prod", { lockId: l.lockId })).toBe(false);
    store.lock("prod", { lockedBy: "alice" });
    expect(store.forceUnlock("prod", { reason: "alice left" })?.lockedBy).toBe("alice");
    expect(store.lockStatus("prod")).toBeUndefined();
    expect(store.events({ stack: "prod" }).map((e) => e.type)).toEqual([
      "lock.force_released",
      "lock.acquired",
      "lock.released",
      "lock.acquired",
      "stack.created",
    ]);
  });

  it("breaks an expired lock and the lock of a process that died", async () => {
    store.create("prod");
    store.lock("prod", { lockedBy: "ci", ttlMs: 30 });
    await new Promise((r) => setTimeout(r, 60));
    expect(store.lockStatus("prod")?.stale).toBe("expired");
    store.lock("prod", { lockedBy: "next" });
    expect(store.lockStatus("prod")?.lockedBy).toBe("next");
    store.forceUnlock("prod");

    // A real process takes the lock through its own connection, then dies.
    const script = `
      const { openStackStore } = await import(${JSON.stringify(path.resolve(__dirname, "index.ts"))});
      const s = openStackStore({ path: ${JSON.stringify(file)} });
      s.lock("prod", { lockedBy: "worker" });
      console.log("locked");
      setInterval(() => {}, 1000);`;
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    expect(store.lockStatus("prod")).toMatchObject({ lockedBy: "worker", pid: child.pid });
    expect(codeOf(() => store.lock("prod"))).toBe("SLOTH_STACK_LOCKED");
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    expect(store.lockStatus("prod")?.stale).toBe("holder gone");
    expect(store.lock("prod", { lockedBy: "me" }).lockedBy).toBe("me");
    expect(store.events({ stack: "prod", limit: 2 })[1]).toMatchObject({
      type: "lock.force_released",
      message: "stale lock of worker broken (holder gone)",
    });
  });

  it("keeps a lock not tied to a process (pid null) until released", () => {
    store.create("prod");
    store.lock("prod", { lockedBy: "ops", pid: null });
    expect(store.lockStatus("prod")).toMatchObject({ pid: 0 });
    expect(store.lockStatus("prod")?.stale).toBeUndefined();
  });

  it("refuses a bad ttl", () => {
    store.create("prod");
    expect(codeOf(() => store.lock("prod", { ttlMs: -1 }))).toBe("SLOTH_INVALID_ARGUMENT");
  });
});

describe("snapshots", () => {
  it("numbers versions, compares and restores them", () => {
    store.create("app");
    store.setState("app", { replicas: 2, image: "app:1" });
    store.setResource("app", { name: "web", type: "service", desired: { port: 80 } });
    const v1 = store.snapshot("app", { description: "before upgrade", creator: "admin" });
    expect(v1).toMatchObject({ version: 1, name: "v1", creator: "admin" });
    store.setState("app", { replicas: 3, image: "app:2", canary: true });
    store.setResource("app", { name: "web", type: "service", desired: { port: 8080 } });
    store.snapshot("app");
    expect(store.versions("app").map((v) => v.name)).toEqual(["v1", "v2"]);
    expect(store.compare("app", "v1", "v2")).toEqual([
      { path: "$.state.replicas", kind: "changed", before: 2, after: 3 },
      { path: "$.state.image", kind: "changed", before: "app:1", after: "app:2" },
      { path: "$.state.canary", kind: "extra", after: true },
      { path: "$.resources.web.desired.port", kind: "changed", before: 80, after: 8080 },
    ]);
    store.restore("app", "v1");
    expect(store.get("app").state).toEqual({ replicas: 2, image: "app:1" });
    expect(store.resources("app")[0]?.desired).toEqual({ port: 80 });
    expect(store.compare("app", "1", "current")).toEqual([]);
    expect(codeOf(() => store.version("app", "v9"))).toBe("SLOTH_STACK_VERSION_NOT_FOUND");
    expect(codeOf(() => store.version("app", "latest"))).toBe("SLOTH_INVALID_ARGUMENT");
    store.deleteVersion("app", 2);
    // Numbers are never reused.
    expect(store.snapshot("app").version).toBe(3);
  });

  it("does not restore under someone else's lock", () => {
    store.create("app");
    store.snapshot("app");
    const l = store.lock("app", { lockedBy: "deploy" });
    expect(codeOf(() => store.restore("app", 1))).toBe("SLOTH_STACK_LOCKED");
    store.restore("app", 1, { lockId: l.lockId });
  });
});

describe("the database file", () => {
  it("is shared by processes and survives reopening", () => {
    store.create("a");
    const other = openStackStore({ path: file });
    other.lock("a", { lockedBy: "other" });
    expect(store.lockStatus("a")?.lockedBy).toBe("other");
    other.close();
    store.close();
    store = openStackStore({ path: file });
    expect(store.get("a").lock?.lockedBy).toBe("other");
  });

  it("names the file and the fix when it is not a database", () => {
    const bad = path.join(dir, "bad.db");
    fs.writeFileSync(bad, "not a database at all, just text".repeat(100));
    expect(() => openStackStore({ path: bad })).toThrow(/bad\.db/);
    // Nothing was overwritten.
    expect(fs.readFileSync(bad, "utf8").startsWith("not a database")).toBe(true);
  });
});

describe("review findings", () => {
  it("refuses a ttl past 10 years and JSON nested too deep", () => {
    store.create("s");
    expect(codeOf(() => store.lock("s", { ttlMs: 1e15 }))).toBe("SLOTH_INVALID_ARGUMENT");
    let deep: unknown = 1;
    for (let i = 0; i < 300; i++) deep = [deep];
    expect(() => store.setResource("s", { name: "d", type: "t", desired: deep as never })).toThrow(
      "resource 'd': desired nests deeper than 256 levels",
    );
    expect(() => store.setState("s", { deep } as never)).toThrow(
      "state nests deeper than 256 levels",
    );
  });

  it("sees keys named like Object.prototype's (constructor, toString, __proto__)", () => {
    store.create("q");
    store.snapshot("q");
    store.setResource("q", { name: "constructor", type: "t", desired: 1 });
    store.setResource("q", { name: "toString", type: "t", desired: { hasOwnProperty: 2 } });
    expect(store.compare("q", "v1", "current").map((d) => [d.path, d.kind])).toEqual([
      ["$.resources.constructor", "extra"],
      ["$.resources.toString", "extra"],
    ]);
    store.snapshot("q");
    store.removeResource("q", "constructor");
    expect(store.compare("q", "v2", "current")).toEqual([
      {
        path: "$.resources.constructor",
        kind: "missing",
        before: { name: "constructor", type: "t", desired: 1, dependsOn: [] },
      },
    ]);
  });

  it("does not restore dependencies that would now make a cycle", () => {
    store.create("a");
    store.create("b");
    store.update("a", { dependsOn: ["b"] });
    store.snapshot("a");
    store.update("a", { dependsOn: [] });
    store.update("b", { dependsOn: ["a"] });
    expect(() => store.restore("a", "v1")).toThrow(
      "cannot restore v1 of stack 'a': these dependencies would make a cycle: a -> b -> a",
    );
    expect(store.get("a").dependsOn).toEqual([]);
  });

  it("refuses changes under someone else's lock, and takes them under the caller's", () => {
    store.create("m");
    store.setResource("m", { name: "r", type: "t", desired: 1 });
    store.snapshot("m");
    const l = store.lock("m", { lockedBy: "ops", reason: "maintenance", pid: null });
    const changes: [string, () => unknown][] = [
      ["setResource", () => store.setResource("m", { name: "x", type: "t", desired: 1 })],
      ["removeResource", () => store.removeResource("m", "r")],
      ["update", () => store.update("m", { dependsOn: [] })],
      ["setState", () => store.setState("m", {})],
      ["deleteVersion", () => store.deleteVersion("m", 1)],
      ["restore", () => store.restore("m", 1)],
      ["delete", () => store.delete("m")],
      ["snapshot", () => store.snapshot("m")],
    ];
    for (const [what, fn] of changes)
      expect([what, codeOf(fn)]).toEqual([what, "SLOTH_STACK_LOCKED"]);
    store.setResource("m", { name: "x", type: "t", desired: 1 }, { lockId: l.lockId });
    store.restore("m", 1, { lockId: l.lockId });
    store.deleteVersion("m", 1, { lockId: l.lockId });
    store.snapshot("m", { lockId: l.lockId });
    // Events are observations, not changes.
    store.addEvent("m", { type: "note", message: "hi" });
  });

  it("records a run whose process died as failed when its stale lock is seen", async () => {
    store.create("k");
    const script = `
      const { openStackStore } = await import(${JSON.stringify(path.resolve(__dirname, "index.ts"))});
      const s = openStackStore({ path: ${JSON.stringify(file)} });
      const l = s.lock("k", { operation: "run", lockedBy: "runner" });
      s.beginExecution("k", { runId: "r-dead", lockId: l.lockId });
      console.log("running");
      setInterval(() => {}, 1000);`;
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    expect(store.get("k").status).toBe("running");
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const s = store.get("k");
    expect(s).toMatchObject({ status: "failed", executionCount: 1, lock: undefined });
    expect(store.events({ stack: "k", limit: 1 })[0]).toMatchObject({
      type: "stack.execution.failed",
      message: "run r-dead ended without recording how: its lock is stale (holder gone, runner)",
    });
  });
});
