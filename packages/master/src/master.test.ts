import crypto from "node:crypto";
import path from "node:path";
import { connect, fromConnectError, isSlothError, masterClient } from "@sloth/client";
import { AgentStatus } from "@sloth/proto";
import { cleanup, startTestMaster, tempDir } from "@sloth/testkit";
import { afterEach, describe, expect, it } from "vitest";
import type { MasterEvent } from "./master.js";

afterEach(cleanup);

async function withClient<T>(
  address: string,
  token: string | undefined,
  fn: (c: ReturnType<typeof masterClient>) => Promise<T>,
) {
  const conn = connect({ address, token });
  try {
    return await fn(masterClient(conn));
  } finally {
    conn.close();
  }
}

function register(
  c: ReturnType<typeof masterClient>,
  name: string,
  labels: Record<string, string>,
  secret = crypto.randomBytes(32),
) {
  return c.registerAgent({
    name,
    reportAddress: "127.0.0.1:1",
    port: 1,
    labels,
    identitySecret: secret,
    version: "t",
  });
}

describe("master service", () => {
  it("filters agents by labels (AND), name glob and status", async () => {
    const m = await startTestMaster();
    await withClient(m.address, m.token, async (c) => {
      await register(c, "web-1", { role: "web", zone: "a" });
      await register(c, "web-2", { role: "web", zone: "b" });
      await register(c, "db-1", { role: "db", zone: "a" });
      const names = async (req: Parameters<typeof c.listAgents>[0]) =>
        (await c.listAgents(req)).agents.map((a) => a.name);
      expect(await names({})).toEqual(["db-1", "web-1", "web-2"]);
      expect(await names({ labels: { role: "web" } })).toEqual(["web-1", "web-2"]);
      expect(await names({ labels: { role: "web", zone: "a" } })).toEqual(["web-1"]);
      expect(await names({ nameGlob: "web-*" })).toEqual(["web-1", "web-2"]);
      expect(await names({ nameGlob: "*-1", labels: { zone: "a" } })).toEqual(["db-1", "web-1"]);
      expect(await names({ status: AgentStatus.UNREACHABLE })).toEqual(["db-1", "web-1", "web-2"]);
      expect(await names({ status: AgentStatus.ACTIVE })).toEqual([]);
    });
  });

  it("maps errors: unknown agent, held name, missing token", async () => {
    const m = await startTestMaster();
    await withClient(m.address, m.token, async (c) => {
      const secret = crypto.randomBytes(32);
      await register(c, "x", {}, secret);
      const held = await register(c, "x", {}).catch((e: unknown) =>
        fromConnectError(e, { kind: "master", address: m.address }),
      );
      expect(isSlothError(held, "SLOTH_AGENT_NAME_HELD")).toBe(true);
      const missing = await c
        .getAgent({ name: "ghost" })
        .catch((e: unknown) => fromConnectError(e, { kind: "master", address: m.address }));
      expect(isSlothError(missing, "SLOTH_AGENT_NOT_FOUND")).toBe(true);
    });
    await withClient(m.address, undefined, async (c) => {
      const e = await c
        .listAgents({})
        .catch((err: unknown) => fromConnectError(err, { kind: "master", address: m.address }));
      expect(isSlothError(e, "SLOTH_UNAUTHENTICATED")).toBe(true);
      expect((e as Error).message).toBe(
        `master at ${m.address} refused the request: missing token`,
      );
      expect((await c.health({})).version).toMatch(/\d+\.\d+\.\d+/);
    });
  });

  it("refuses an empty agent name and a port out of range as invalid arguments", async () => {
    const m = await startTestMaster();
    await withClient(m.address, m.token, async (c) => {
      const asSloth = (e: unknown) => fromConnectError(e, { kind: "master", address: m.address });
      for (const call of [
        () => c.getAgent({ name: "" }),
        () => c.deleteAgent({ name: "" }),
        async () => {
          for await (const _ of c.runOnAgent({ agentName: "", spec: { command: "true" } })) {
          }
        },
        () => c.prepareWorkspaceOnAgent({ agentName: "", request: { manifestJson: "" } }),
      ]) {
        const e = await call().catch(asSloth);
        expect(isSlothError(e, "SLOTH_INVALID_ARGUMENT"), String(e)).toBe(true);
        expect((e as Error).message).toMatch(/the agent name is empty/);
      }
      for (const port of [0, 70000]) {
        const e = await c
          .registerAgent({
            name: `p${port}`,
            port,
            bindAddress: "127.0.0.1",
            identitySecret: crypto.randomBytes(32),
          })
          .catch(asSloth);
        expect(isSlothError(e, "SLOTH_INVALID_ARGUMENT"), String(e)).toBe(true);
        expect((e as Error).message).toMatch(new RegExp(`port ${port} is outside 1-65535`));
      }
      expect((await c.listAgents({})).agents).toEqual([]);
    });
  });

  it("streams registry events to embedding code", async () => {
    const m = await startTestMaster();
    const ac = new AbortController();
    const seen: string[] = [];
    const done = (async () => {
      for await (const e of m.master.events(ac.signal) as AsyncIterable<MasterEvent>) {
        seen.push(`${e.type}:${e.agent.name}`);
        if (e.type === "removed") ac.abort();
      }
    })();
    await withClient(m.address, m.token, async (c) => {
      await register(c, "ev", {});
      await c.deleteAgent({ name: "ev" });
    });
    await done;
    expect(seen).toEqual(["registered:ev", "removed:ev"]);
  });

  it("delivers events from the call on (not from the first read), and those queued when it stops", async () => {
    const m = await startTestMaster();
    const it = m.master.events()[Symbol.asyncIterator]();
    // Registered before anything reads the iterator.
    await withClient(m.address, m.token, async (c) => {
      await register(c, "early", {});
      await c.deleteAgent({ name: "early" });
    });
    await m.stop();
    const seen: string[] = [];
    for (let r = await it.next(); !r.done; r = await it.next())
      seen.push(`${r.value.type}:${r.value.agent.name}`);
    expect(seen).toEqual(["registered:early", "removed:early"]);
  });

  it("refuses a missing registry path, a bad port and an unknown bind address with typed errors", async () => {
    const { createMaster } = await import("./master.js");
    const token = "t".repeat(32);
    expect(() => createMaster({ registryPath: "", token })).toThrow(
      /registryPath must name a file/,
    );
    expect(() => createMaster({ registryPath: "r.db", token: "tok" })).toThrow(
      /the cluster token is too short \(3 characters; at least 16\)/,
    );
    for (const [opts, code, message] of [
      [{ port: 70000 }, "SLOTH_INVALID_ARGUMENT", /cannot listen on port 70000/],
      [{ port: 0, bind: "no-such-host.invalid" }, "SLOTH_INVALID_ADDRESS", /no such host/],
    ] as const) {
      const m = createMaster({ registryPath: path.join(tempDir(), "registry.db"), token, ...opts });
      const e = await m.listen().then(
        () => undefined,
        (err: unknown) => err,
      );
      await m.stop();
      expect(isSlothError(e, code), String(e)).toBe(true);
      expect(String(e)).toMatch(message);
    }
  });

  it("refuses a second listen(), and listen() after stop(): no server outlives stop()", async () => {
    const m = await startTestMaster();
    await expect(m.master.listen()).rejects.toSatisfy(
      (e) => isSlothError(e, "SLOTH_INVALID_ARGUMENT") && /listens already/.test(String(e)),
    );
    await m.stop();
    await expect(m.master.listen()).rejects.toSatisfy(
      (e) => isSlothError(e, "SLOTH_INVALID_ARGUMENT") && /was stopped/.test(String(e)),
    );
  });

  it("serves /metrics and Connect JSON over HTTP/1.1 on the same port", async () => {
    const m = await startTestMaster();
    await withClient(m.address, m.token, (c) => register(c, "metered", {}));
    const metrics = await (await fetch(`http://${m.address}/metrics`)).text();
    expect(metrics).toMatch(/sloth_master_agents\{status="unreachable"\} 1/);
    expect(metrics).toMatch(/sloth_master_rpc_total\{method="RegisterAgent",code="OK"\} 1/);
    expect(metrics).toMatch(/sloth_master_runs_in_flight 0/);
    const res = await fetch(`http://${m.address}/sloth.master.v1.MasterService/ListAgents`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${m.token}` },
      body: "{}",
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { agents: Array<{ name: string; status: string }> };
    expect(body.agents.map((a) => [a.name, a.status])).toEqual([
      ["metered", "AGENT_STATUS_UNREACHABLE"],
    ]);
    const denied = await fetch(`http://${m.address}/sloth.master.v1.MasterService/ListAgents`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(denied.status).toBe(401);
  });
});

describe("createMaster options", () => {
  it.each([
    [{ heartbeatIntervalMs: 0 }, /a heartbeat interval of 0 ms would have agents call it nonstop/],
    [
      { heartbeatIntervalMs: 10_000, agentTtlMs: 5000 },
      /an agent TTL of 5000 ms is shorter than the heartbeat interval \(10000 ms\)/,
    ],
    [{ agentGraceMs: -1 }, /a negative duration/],
  ])("refuses timings that cannot work: %j", async (timings, message) => {
    const { createMaster } = await import("./master.js");
    let err: unknown;
    try {
      createMaster({ registryPath: ":memory:", token: "t".repeat(32), ...timings });
    } catch (e) {
      err = e;
    }
    expect(isSlothError(err, "SLOTH_INVALID_ARGUMENT")).toBe(true);
    expect((err as Error).message).toMatch(message);
  });
});
