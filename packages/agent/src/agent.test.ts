import { isSlothError } from "@sloth/client";
import { afterEach, describe, expect, it } from "vitest";
import { startTestAgent, type TestAgent, waitFor } from "../test/helpers.js";
import { createAgent } from "./agent.js";

let t: TestAgent | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

async function runToEnd(client: TestAgent["client"], command: string) {
  let out = "";
  let exit: { exitCode: number; signal: string } | undefined;
  for await (const res of client.runCommand({ spec: { command } })) {
    const ev = res.event?.event;
    if (ev?.case === "output") out += Buffer.from(ev.value.data).toString();
    if (ev?.case === "exit") exit = ev.value;
  }
  return { out, exit };
}

describe("Agent.stop", () => {
  it("lets running commands finish within the grace and refuses new ones", async () => {
    t = await startTestAgent();
    const agent = t.agent;
    const running = runToEnd(t.client, "sleep 0.5; echo done");
    await waitFor(() => agent.status().runningCommands === 1, 10_000, "the command to start");
    const stopped = agent.stop({ graceMs: 20_000 });
    const refused = await runToEnd(t.client, "echo late").catch((e: unknown) => e);
    expect(String(refused)).toMatch(/shutting down/);
    expect(await running).toEqual({
      out: "done\n",
      exit: expect.objectContaining({ exitCode: 0 }),
    });
    await stopped;
    expect(agent.status().state).toBe("stopped");
  });

  it("kills commands still running when the grace ends", async () => {
    t = await startTestAgent();
    const agent = t.agent;
    const running = runToEnd(t.client, "sleep 600");
    await waitFor(() => agent.status().runningCommands === 1, 10_000, "the command to start");
    await agent.stop({ graceMs: 200 });
    expect((await running).exit).toMatchObject({ exitCode: -1, signal: "SIGTERM" });
  });

  it("cuts the grace short when stopped again with grace 0", async () => {
    t = await startTestAgent();
    const agent = t.agent;
    const running = runToEnd(t.client, "sleep 600");
    await waitFor(() => agent.status().runningCommands === 1, 10_000, "the command to start");
    const first = agent.stop({ graceMs: 600_000 });
    await agent.stop({ graceMs: 0 });
    await first;
    expect((await running).exit).toMatchObject({ signal: "SIGTERM" });
  });
});

describe("createAgent", () => {
  it("rejects bad options before doing anything", () => {
    const base = { masterAddress: "127.0.0.1:50053", token: "t".repeat(32) };
    for (const bad of [
      { ...base, name: "../etc" },
      { ...base, name: "" },
      { ...base, port: 65536 },
      { ...base, token: "" },
      { ...base, token: "short-token" },
      { ...base, masterAddress: "nope" },
      { ...base, reportAddress: "1.2.3.4" },
    ]) {
      expect(() => createAgent(bad), JSON.stringify(bad)).toThrow();
      try {
        createAgent(bad);
      } catch (e) {
        expect(isSlothError(e)).toBe(true);
      }
    }
  });

  it("reports a port in use with a typed error", async () => {
    t = await startTestAgent();
    const other = createAgent({
      masterAddress: "127.0.0.1:1",
      token: "t".repeat(32),
      port: t.port,
      bindAddress: "127.0.0.1",
      dataDir: t.dataDir,
    });
    const err = await other.start().catch((e: unknown) => e);
    expect(isSlothError(err, "SLOTH_PORT_IN_USE")).toBe(true);
    expect((err as { describe(): string }).describe()).toBe(
      `port ${t.port} is already in use; choose another with --port`,
    );
    await other.wait();
  });
});
