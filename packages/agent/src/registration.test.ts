import fs from "node:fs";
import { isSlothError } from "@sloth/client";
import { afterEach, describe, expect, it } from "vitest";
import { type FakeMaster, freePort, startFakeMaster } from "../test/fake-master.js";
import { startTestAgent, type TestAgent, tempDir, waitFor } from "../test/helpers.js";
import { AgentNameHeldError } from "./errors.js";
import type { AgentEvent } from "./events.js";

const agents: TestAgent[] = [];
const masters: FakeMaster[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.close();
  for (const m of masters.splice(0)) await m.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function master(options: Parameters<typeof startFakeMaster>[0] = {}): Promise<FakeMaster> {
  const m = await startFakeMaster(options);
  masters.push(m);
  return m;
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
    const req = m.registrations[0];
    expect(req).toMatchObject({
      name: "test-agent",
      port: a.port,
      bindAddress: "127.0.0.1",
      reportAddress: "10.0.0.7:6000",
      labels: { env: "test", role: "web" },
    });
    expect(req?.identitySecret.length).toBe(32);
    expect(req?.facts?.cpus).toBeGreaterThan(0);
    expect(req?.version).toBe(a.agent.version);
    await waitFor(() => m.heartbeats >= 3, 15_000, "three heartbeats");
    expect(a.agent.status()).toMatchObject({
      registered: true,
      heartbeatIntervalMs: 50,
      lastError: undefined,
    });
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
    m.agents.clear();
    await waitFor(() => count(a.events, "registered") >= 2, 15_000, "a second registration");
    expect(a.events.find((e) => e.type === "forgotten")).toBeDefined();
    expect(
      a.events
        .filter((e) => e.type === "registered")
        .map((e) => e.type === "registered" && e.again),
    ).toEqual([false, true]);
    expect(m.registrations[1]?.identitySecret).toEqual(m.registrations[0]?.identitySecret);
  });

  it("reconnects after the master restarts, registering again when its data is gone", async () => {
    const m1 = await master();
    const a = await agent(m1.address);
    await a.agent.registered();
    const kept = new Map(m1.agents);
    await m1.close();
    await waitFor(() => count(a.events, "heartbeat-failed") >= 2, 15_000, "failed heartbeats");
    expect(a.agent.status().registered).toBe(false);
    // Same data: heartbeats simply resume.
    const m2 = await master({ port: m1.port, agents: kept });
    await waitFor(() => count(a.events, "reconnected") >= 1, 15_000, "reconnection");
    expect(m2.registrations).toHaveLength(0);
    expect(a.agent.status().registered).toBe(true);
    // Data lost: the master answers NOT_FOUND and the agent registers again.
    await m2.close();
    await waitFor(() => count(a.events, "heartbeat-failed") >= 3, 15_000, "failed heartbeats");
    const m3 = await master({ port: m1.port });
    await waitFor(() => m3.registrations.length >= 1, 15_000, "registration with the new master");
    await waitFor(() => a.agent.status().registered, 15_000, "registered");
  });

  it("stops with a typed error when its name is held by another agent", async () => {
    const m = await master();
    m.agents.set("test-agent", "00".repeat(32));
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

  it("keeps retrying with a wrong token and says why", async () => {
    const m = await master();
    const a = await agent(m.address, { token: "not-the-cluster-token" });
    await waitFor(() => count(a.events, "registration-failed") >= 2, 15_000, "refusals");
    const status = a.agent.status();
    expect(isSlothError(status.lastError, "SLOTH_UNAUTHENTICATED")).toBe(true);
    expect(status.lastError?.message).not.toContain("not-the-cluster-token");
    expect(m.agents.size).toBe(0);
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
    await first.agent.stop();
    const second = await agent(m.address, { dataDir });
    await second.agent.registered();
    expect(fs.readFileSync(file, "utf8")).toBe(secret);
    expect(m.registrations[1]?.identitySecret).toEqual(m.registrations[0]?.identitySecret);
    // Another name on the same host has its own identity.
    const other = await agent(m.address, { dataDir, name: "other" });
    await other.agent.registered();
    expect(fs.readFileSync(`${dataDir}/agents/other/identity`, "utf8")).not.toBe(secret);
  });
});
