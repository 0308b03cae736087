import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  detectDrift,
  fixDrift,
  isStackError,
  lastDrift,
  openStackStore,
  type StackStore,
  validateStack,
} from "./index.js";

let dir: string;
let store: StackStore;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-stack-drift-"));
  store = openStackStore({ path: path.join(dir, "stacks.db") });
  store.create("web");
});
afterEach(() => {
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

// Resources are files under `dir`: their checks print them, their fixes write them.
function fileResource(name: string, desired: unknown, dependsOn: string[] = []) {
  const f = path.join(dir, `${name}.json`);
  store.setResource("web", {
    name,
    type: "file",
    desired: desired as never,
    check: `cat ${f}`,
    fix: `printf '%s' '${JSON.stringify(desired)}' > ${f}; echo "${name}" >> ${dir}/fix-order`,
    dependsOn,
  });
  return f;
}

describe("drift", () => {
  it("finds changed, missing and unchecked resources, compares only what is desired", async () => {
    const cfg = fileResource("config", { port: 80, tls: { enabled: true } });
    fs.writeFileSync(cfg, JSON.stringify({ port: 8080, tls: { enabled: true }, pid: 42 }));
    fileResource("certs", { count: 2 });
    store.setResource("web", { name: "motd", type: "text", desired: "hello", check: "echo hello" });
    store.setResource("web", { name: "dns", type: "record", desired: { ttl: 60 } });
    const r = await detectDrift(store, "web", { cwd: dir });
    const by = Object.fromEntries(r.resources.map((x) => [x.name, x.finding]));
    expect(r.inSync).toBe(false);
    expect(by.config).toEqual({
      status: "drifted",
      differences: [{ path: "$.port", kind: "changed", before: 80, after: 8080 }],
    });
    expect(by.certs?.status).toBe("missing");
    expect(by.certs?.message).toMatch(/^check exited 1: cat: .*certs\.json: No such file/);
    expect(by.motd?.status).toBe("in_sync");
    expect(by.dns?.status).toBe("unchecked");
    // Recorded: `drift show` reads it back without running anything.
    const last = lastDrift(store, "web");
    expect(last.resources.find((x) => x.name === "config")?.actual).toEqual({
      port: 8080,
      tls: { enabled: true },
      pid: 42,
    });
    expect(store.events({ stack: "web" })[0]).toMatchObject({
      type: "drift.detected",
      severity: "warning",
    });
    const v = validateStack(store, "web");
    expect(v.find((c) => c.check === "no known drift")).toMatchObject({ level: "warning" });
    expect(v.find((c) => c.check === "resources checkable")?.message).toBe("no check command: dns");
  });

  it("fixes drifted resources dependencies first, then checks them again", async () => {
    const a = fileResource("app", { v: 2 }, ["db"]);
    fileResource("db", { v: 1 });
    fs.writeFileSync(a, '{"v":1}');
    const r = await fixDrift(store, "web", { cwd: dir });
    expect(r.fixed.sort()).toEqual(["app", "db"]);
    expect(r.failed).toEqual([]);
    expect(r.inSync).toBe(true);
    expect(fs.readFileSync(path.join(dir, "fix-order"), "utf8")).toBe("db\napp\n");
    expect(store.events({ stack: "web" }).map((e) => e.type)).toContain("drift.fixed");
    expect((await detectDrift(store, "web")).inSync).toBe(true);
  });

  it("reports a fix that fails or does not fix, and a check that hangs", async () => {
    store.setResource("web", {
      name: "broken",
      type: "x",
      desired: 1,
      check: "echo 2",
      fix: "echo nope >&2; exit 3",
    });
    store.setResource("web", {
      name: "stubborn",
      type: "x",
      desired: 1,
      check: "echo 2",
      fix: "true",
    });
    store.setResource("web", { name: "slow", type: "x", desired: 1, check: "sleep 30" });
    const t = Date.now();
    // Long enough for every bash to start on a loaded machine; the hanging check still times out.
    const r = await fixDrift(store, "web", { timeoutMs: 3000 });
    expect(Date.now() - t).toBeLessThan(20_000);
    expect(r.fixed).toEqual([]);
    expect(r.failed).toEqual(
      expect.arrayContaining([
        { name: "broken", message: "fix exited 3: nope" },
        { name: "stubborn", message: "still drifted after its fix" },
      ]),
    );
    expect(r.resources.find((x) => x.name === "slow")?.finding).toMatchObject({
      status: "error",
      message: "check timed out after 3s",
    });
  });

  it("names an unknown resource", async () => {
    await expect(detectDrift(store, "web", { resources: ["ghost"] })).rejects.toSatisfy(
      (e: unknown) => isStackError(e, "SLOTH_STACK_RESOURCE_NOT_FOUND"),
    );
  });
});

describe("drift, review findings", () => {
  it("takes a check without a desired value as in sync when it exits 0", async () => {
    store.setResource("web", {
      name: "passwd",
      type: "file",
      desired: null,
      check: "test -f /etc/passwd",
    });
    store.setResource("web", {
      name: "nope",
      type: "file",
      desired: null,
      check: "test -f /nonexistent",
    });
    const r = await detectDrift(store, "web");
    expect(r.resources.map((x) => [x.name, x.finding.status])).toEqual([
      ["nope", "missing"],
      ["passwd", "in_sync"],
    ]);
  });

  it("reports JSON nested too deep, and compares prototype-named keys as own keys", async () => {
    store.setResource("web", {
      name: "deep",
      type: "t",
      desired: [],
      check: `node -e 'console.log("[".repeat(4000) + "]".repeat(4000))'`,
    });
    store.setResource("web", {
      name: "proto",
      type: "t",
      desired: { constructor: "x" },
      check: "echo {}",
    });
    const r = await detectDrift(store, "web");
    const by = Object.fromEntries(r.resources.map((x) => [x.name, x.finding]));
    expect(by.deep).toMatchObject({
      status: "error",
      message: "check printed JSON nested deeper than 256 levels",
    });
    expect(by.proto).toEqual({
      status: "drifted",
      differences: [{ path: "$.constructor", kind: "missing", before: "x" }],
    });
  });

  it("refuses a timeout a timer cannot wait, and stops its commands when aborted", async () => {
    await expect(detectDrift(store, "web", { timeoutMs: 0 })).rejects.toThrow(
      "invalid command timeout 0 ms: expected 1 ms to 24 days",
    );
    const mark = path.join(dir, "survived");
    store.setResource("web", {
      name: "slow",
      type: "t",
      desired: 1,
      check: `sleep 3; touch ${mark}`,
    });
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 200);
    const t = Date.now();
    const r = await detectDrift(store, "web", { signal: stop.signal });
    expect(Date.now() - t).toBeLessThan(2500);
    expect(r.resources[0]?.finding).toMatchObject({
      status: "error",
      message: "check interrupted",
    });
    await new Promise((res) => setTimeout(res, 3500));
    expect(fs.existsSync(mark)).toBe(false);
  });
});
