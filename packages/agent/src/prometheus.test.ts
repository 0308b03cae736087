import net from "node:net";
import { agentClient, connect, generateToken } from "@sloth/client";
import { cleanup, onCleanup, tempDir } from "@sloth/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { createAgent } from "./agent.js";

afterEach(cleanup);

describe("agent /metrics", () => {
  it("counts commands, results and output bytes", async () => {
    const token = generateToken();
    const agent = createAgent({
      name: "metered",
      masterAddress: "127.0.0.1:1",
      token,
      port: 0,
      bindAddress: "127.0.0.1",
      dataDir: tempDir(),
      metricsPort: 0,
      backoff: { baseMs: 60_000, maxMs: 60_000 },
    });
    onCleanup(() => agent.stop({ graceMs: 0 }));
    const { address, metricsPort } = await agent.start();
    expect(metricsPort).toBeGreaterThan(0);
    const conn = connect({ address, token });
    onCleanup(() => conn.close());
    for (const command of ["printf 12345", "exit 2"]) {
      for await (const _ of agentClient(conn).runCommand({ spec: { command } })) {
        // drain
      }
    }
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(text).toMatch(/sloth_agent_commands_total\{result="ok"\} 1/);
    expect(text).toMatch(/sloth_agent_commands_total\{result="failed"\} 1/);
    expect(text).toMatch(/sloth_agent_output_bytes_total\{stream="stdout"\} 5/);
    expect(text).toMatch(/sloth_agent_commands_running 0/);
    expect(text).toMatch(/sloth_agent_process_resident_memory_bytes \d+/);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/nope`)).status).toBe(404);
  });

  it("fails to start when the metrics port is taken, freeing its RPC port", async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    onCleanup(() => new Promise<void>((r) => blocker.close(() => r())));
    const port = (blocker.address() as net.AddressInfo).port;
    const agent = createAgent({
      name: "unmetered",
      masterAddress: "127.0.0.1:1",
      token: generateToken(),
      port: 0,
      bindAddress: "127.0.0.1",
      dataDir: tempDir(),
      metricsPort: port,
      backoff: { baseMs: 60_000, maxMs: 60_000 },
    });
    await expect(agent.start()).rejects.toMatchObject({
      code: "SLOTH_PORT_IN_USE",
      message: `metrics port ${port} is already in use`,
    });
    expect(agent.status().state).toBe("stopped");
  });
});
