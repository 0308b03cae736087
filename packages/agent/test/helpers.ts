import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { agentClient, connect, type SlothConnection } from "@sloth/client";
import { type Agent, type AgentOptions, createAgent } from "../src/index.js";

/** Token used by test agents. */
export const TEST_TOKEN = "test-token-0123456789abcdef";

/** A started test agent with a client, torn down by `close()`. */
export interface TestAgent {
  agent: Agent;
  address: string;
  port: number;
  dataDir: string;
  conn: SlothConnection;
  client: ReturnType<typeof agentClient>;
  close(): Promise<void>;
}

/** Makes a temp dir removed by the returned cleanup. */
export function tempDir(prefix = "sloth-agent-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * Starts an agent on 127.0.0.1:0 with a temp data dir. Without a master in
 * the options it points at a closed port and backs off for a minute, so it
 * stays quiet.
 */
export async function startTestAgent(options: Partial<AgentOptions> = {}): Promise<TestAgent> {
  const dataDir = options.dataDir ?? tempDir();
  const agent = createAgent({
    masterAddress: "127.0.0.1:1",
    token: TEST_TOKEN,
    name: "test-agent",
    port: 0,
    bindAddress: "127.0.0.1",
    backoff: { baseMs: 60_000, maxMs: 60_000 },
    killGraceMs: 500,
    shutdownGraceMs: 2000,
    ...options,
    dataDir,
  });
  const { port } = await agent.start();
  const address = `127.0.0.1:${port}`;
  const conn = connect({ address, token: TEST_TOKEN });
  return {
    agent,
    address,
    port,
    dataDir,
    conn,
    client: agentClient(conn),
    async close() {
      conn.close();
      await agent.stop({ graceMs: 0 });
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns true, failing after `timeoutMs`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** True while a process with this pid exists (`kill -0`). */
export function processExists(pid: number): boolean {
  return spawnSync("kill", ["-0", String(pid)]).status === 0;
}
