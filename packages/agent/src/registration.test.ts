import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import { isSlothError } from "@sloth/client";
import {
  cleanup,
  FAST_TIMERS,
  tempDir as kitTempDir,
  startTestMaster,
  type TestMaster,
} from "@sloth/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { startTestAgent, TEST_TOKEN, type TestAgent, tempDir, waitFor } from "../test/helpers.js";
import { AgentNameHeldError } from "./errors.js";
import type { AgentEvent } from "./events.js";

// These tests run the agent against the real master (@sloth/master on
// 127.0.0.1), stopped and restarted to exercise the agent's reconnection.
const agents: TestAgent[] = [];
const masters: TestMaster[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.close();
  for (const m of masters.splice(0)) await m.stop();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  await cleanup();
});

async function master(options: { port?: number; dataDir?: string } = {}): Promise<TestMaster> {
  const m = await startTestMaster({
    token: TEST_TOKEN,
    dataDir: options.dataDir ?? kitTempDir(),
    port: options.port,
  });
  masters.push(m);
  return m;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function agent(masterAddress: string, extra: Parameters<typeof startTestAgent>[0] = {}) {
  const events: AgentEvent[] = [];
  const a = await startTestAgent({
    masterAddress,
    backoff: { baseMs: 20, maxMs: 200 },
    onEvent: (e) => events.push(e),
    ...extra,
  });
  agents.push(a);
  return { ...a, events };
}

const count = (events: AgentEvent[], type: AgentEvent["type"]) =>
  events.filter((e) => e.type === type).length;

describe("registration", () => {
  it("registers with its facts, then heartbeats", async () => {
    const m = await master();
    const a = await agent(m.address, {
      labels: { env: "test", role: "web" },
      reportAddress: "10.0.0.7:6000",
    });
    await a.agent.registered();
    const entry = m.master.registry.get("test-agent");
    expect(entry).toMatchObject({
      name: "test-agent",
      port: a.port,
      bindAddress: "127.0.0.1",
      reportAddress: "10.0.0.7:6000",
      address: "10.0.0.7:6000",
      labels: { env: "test", role: "web" },
      version: a.agent.version,
    });
    expect(entry?.secretHash).toMatch(/^[0-9a-f]{64}$/);
    expect(Number(entry?.facts.cpus)).toBeGreaterThan(0);
    const first = entry!.lastSeen;
    await waitFor(
      () => (m.master.registry.get("test-agent")?.lastSeen ?? 0) > first,
      15_000,
      "a heartbeat",
    );
    expect(a.agent.status()).toMatchObject({
      registered: true,
      heartbeatIntervalMs: FAST_TIMERS.heartbeatIntervalMs,
      lastError: undefined,
    });
  });

  it("is marked inactive at once when it stops, and active again when it comes back", async () => {
    const m = await master();
    const dataDir = tempDir();
    dirs.push(dataDir);
    const a = await agent(m.address, { dataDir });
    await a.agent.registered();
    expect(m.master.registry.get("test-agent")?.status).toBe("active");
    await a.agent.stop();
    // Before any TTL could have run out.
    expect(m.master.registry.get("test-agent")).toMatchObject({
      status: "inactive",
      statusReason: "the agent stopped",
    });
    const b = await agent(m.address, { dataDir });
    await b.agent.registered();
    expect(m.master.registry.get("test-agent")?.status).toBe("active");
  });

  it("keeps retrying while the master is down, then registers", async () => {
    const port = await freePort();
    const a = await agent(`127.0.0.1:${port}`);
    await waitFor(() => count(a.events, "registration-failed") >= 3, 15_000, "failed attempts");
    const status = a.agent.status();
    expect(status.registered).toBe(false);
    expect(isSlothError(status.lastError, "SLOTH_UNREACHABLE")).toBe(true);
    expect(status.lastError?.message).toContain(`127.0.0.1:${port}`);
    await master({ port });
    await a.agent.registered();
    expect(a.agent.status().lastError).toBeUndefined();
  });

  it("registers again when the master forgets it", async () => {
    const m = await master();
    const a = await agent(m.address);
    await a.agent.registered();
    const hash = m.master.registry.get("test-agent")?.secretHash;
    m.master.registry.delete("test-agent");
    await waitFor(() => count(a.events, "registered") >= 2, 15_000, "a second registration");
    expect(a.events.find((e) => e.type === "forgotten")).toBeDefined();
    expect(
      a.events
        .filter((e) => e.type === "registered")
        .map((e) => e.type === "registered" && e.again),
    ).toEqual([false, true]);
    expect(m.master.registry.get("test-agent")?.secretHash).toBe(hash);
  });

  it("reconnects after the master restarts, registering again when its data is gone", async () => {
    const dataDir = kitTempDir();
    const m1 = await master({ dataDir });
    const a = await agent(m1.address);
    await a.agent.registered();
    await m1.stop();
    await waitFor(() => count(a.events, "heartbeat-failed") >= 2, 15_000, "failed heartbeats");
    expect(a.agent.status().registered).toBe(false);
    // Same data: heartbeats simply resume.
    const m2 = await master({ port: m1.port, dataDir });
    await waitFor(() => count(a.events, "reconnected") >= 1, 15_000, "reconnection");
    expect(count(a.events, "registered")).toBe(1);
    expect(a.agent.status().registered).toBe(true);
    // Data lost: the master answers NOT_FOUND and the agent registers again.
    await m2.stop();
    await waitFor(() => count(a.events, "heartbeat-failed") >= 3, 15_000, "failed heartbeats");
    const m3 = await master({ port: m1.port });
    await waitFor(
      () => m3.master.registry.get("test-agent") !== undefined,
      15_000,
      "registration with the new master",
    );
    await waitFor(() => a.agent.status().registered, 15_000, "registered");
  });

  it("stops with a typed error when its name is held by another agent", async () => {
    const m = await master();
    m.master.registry.register(
      {
        name: "test-agent",
        address: "10.9.9.9:1",
        reportAddress: "",
        bindAddress: "",
        port: 1,
        version: "x",
        labels: {},
        facts: {},
        secret: crypto.randomBytes(32),
        tls: false,
      },
      "active",
      "",
    );
    const a = await agent(m.address);
    const err = await a.agent.wait().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentNameHeldError);
    expect(isSlothError(err, "SLOTH_AGENT_NAME_HELD")).toBe(true);
    expect((err as AgentNameHeldError).describe()).toBe(
      "agent name 'test-agent' is held by another agent; run `sloth-runner agent delete test-agent`",
    );
    expect(a.agent.status().state).toBe("stopped");
    await expect(a.agent.registered()).rejects.toBe(err);
  });

  it("stops at a token the master refuses on the first registration, saying why", async () => {
    const m = await master();
    const a = await agent(m.address, { token: "not-the-cluster-token" });
    const err = await a.agent.registered().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isSlothError(err, "SLOTH_UNAUTHENTICATED")).toBe(true);
    expect((err as Error).message).toBe(
      `cannot register with master at ${m.address}: it refused the cluster token`,
    );
    expect((err as Error).message).not.toContain("not-the-cluster-token");
    await waitFor(() => a.agent.status().state === "stopped", 5_000, "the agent to stop");
    expect(count(a.events, "registration-failed")).toBe(0);
    expect(m.master.registry.list()).toEqual([]);
  });
});

describe("identity", () => {
  it("is created 0600 in a 0700 directory and reused across restarts", async () => {
    const m = await master();
    const dataDir = tempDir();
    dirs.push(dataDir);
    const first = await agent(m.address, { dataDir });
    await first.agent.registered();
    const file = `${dataDir}/agents/test-agent/identity`;
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(`${dataDir}/agents/test-agent`).mode & 0o777).toBe(0o700);
    const secret = fs.readFileSync(file, "utf8");
    const hash = m.master.registry.get("test-agent")?.secretHash;
    await first.agent.stop();
    // The same identity comes back: the master accepts it (a new one would be refused).
    const second = await agent(m.address, { dataDir });
    await second.agent.registered();
    expect(fs.readFileSync(file, "utf8")).toBe(secret);
    expect(m.master.registry.get("test-agent")?.secretHash).toBe(hash);
    // Another name on the same host has its own identity.
    const other = await agent(m.address, { dataDir, name: "other" });
    await other.agent.registered();
    expect(fs.readFileSync(`${dataDir}/agents/other/identity`, "utf8")).not.toBe(secret);
    expect(m.master.registry.get("other")?.secretHash).not.toBe(hash);
  });
});
