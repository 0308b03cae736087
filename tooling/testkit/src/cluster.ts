import fs from "node:fs";
import path from "node:path";
import { generateToken, resolveDataDir } from "@sloth/client";
import { createMaster, type Master, type MasterOptions } from "@sloth/master";
import { AGENTD_BIN, CLI_BIN, onCleanup, type Spawned, spawnNode, tempDir } from "./process.js";

/** Short liveness timers so tests do not wait for production defaults. */
// Fast enough that a killed agent is marked inactive within seconds; slow
// enough that an agent starved of CPU for a moment on a loaded machine is not.
export const FAST_TIMERS = {
  heartbeatIntervalMs: 300,
  heartbeatJitterPercent: 20,
  agentTtlMs: 1500,
  agentGraceMs: 1000,
};

/** An in-process master on 127.0.0.1 and a free port. */
export interface TestMaster {
  master: Master;
  address: string;
  port: number;
  token: string;
  dataDir: string;
  stop(): Promise<void>;
}

/** Starts an in-process master with a temp data dir; stopped at cleanup. */
export async function startTestMaster(
  options: Partial<MasterOptions> & { dataDir?: string } = {},
): Promise<TestMaster> {
  const dataDir = options.dataDir ?? tempDir("sloth-master-");
  const token = options.token ?? generateToken();
  const master = createMaster({
    registryPath: resolveDataDir(dataDir).master.registryDb,
    ...FAST_TIMERS,
    shutdownTimeoutMs: 2000,
    ...options,
    token,
    port: options.port ?? 0,
    bind: options.bind ?? "127.0.0.1",
  });
  const { port } = await master.listen();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await master.stop();
  };
  onCleanup(stop);
  return { master, address: `127.0.0.1:${port}`, port, token, dataDir, stop };
}

/** A master or agent running as a child process. */
export interface TestProcess {
  proc: Spawned;
  address: string;
  port: number;
  dataDir: string;
}

/** Writes a token file in `dir` and returns its path. */
export function writeToken(dir: string, token = generateToken()): { file: string; token: string } {
  const file = path.join(dir, "token.txt");
  fs.writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return { file, token };
}

/** Starts `sloth-runner master start` on a free port; killed at cleanup. */
export async function spawnMaster(
  options: { dataDir?: string; port?: number; args?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<TestProcess> {
  const dataDir = options.dataDir ?? tempDir("sloth-master-");
  const proc = spawnNode(
    CLI_BIN,
    [
      "master",
      "start",
      "--data-dir",
      dataDir,
      "--port",
      String(options.port ?? 0),
      // The agents' name for --bind; the daemon tests use --bind itself.
      "--bind-address",
      "127.0.0.1",
      "--heartbeat-interval",
      `${FAST_TIMERS.heartbeatIntervalMs}ms`,
      "--agent-ttl",
      `${FAST_TIMERS.agentTtlMs}ms`,
      "--agent-grace",
      `${FAST_TIMERS.agentGraceMs}ms`,
      ...(options.args ?? []),
    ],
    { env: options.env },
  );
  await proc.waitForOutput(/Master listening on \S+:\d+/);
  const m = /Master listening on (\S+):(\d+)/.exec(proc.stderr())!;
  const port = Number(m[2]);
  return { proc, address: `127.0.0.1:${port}`, port, dataDir };
}

/** Starts an agent process registered with `master`; killed at cleanup. */
export async function spawnAgent(options: {
  name: string;
  master: string;
  tokenFile: string;
  dataDir?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  waitRegistered?: boolean;
  /** Start it with `sloth-agentd` (default) or `sloth-runner agent start`. */
  via?: "agentd" | "cli";
}): Promise<TestProcess> {
  const dataDir = options.dataDir ?? tempDir("sloth-agent-");
  const cli = (options.via ?? process.env.SLOTH_TEST_AGENT_VIA) === "cli";
  const proc = spawnNode(
    cli ? CLI_BIN : AGENTD_BIN,
    [
      ...(cli ? ["agent", "start"] : []),
      "--name",
      options.name,
      "--master",
      options.master,
      // Empty: the agent finds the token itself (SLOTH_RUNNER_TOKEN in `env`).
      ...(options.tokenFile ? ["--token-file", options.tokenFile] : []),
      "--data-dir",
      dataDir,
      "--port",
      "0",
      "--bind-address",
      "127.0.0.1",
      ...(options.args ?? []),
    ],
    { env: options.env, detached: true },
  );
  await proc.waitForOutput(/listening on \S+:\d+/);
  const m = /listening on (\S+):(\d+)/.exec(proc.stdout() + proc.stderr())!;
  const port = Number(m[2]);
  if (options.waitRegistered ?? true) await proc.waitForOutput(/registered/);
  return { proc, address: `127.0.0.1:${port}`, port, dataDir };
}
