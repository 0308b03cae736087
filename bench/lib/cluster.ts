// Real masters and agents for the cluster benchmarks: the built binaries
// (`sloth-runner master start`, `sloth-agentd`) as child processes on
// 127.0.0.1 with production timers, their CPU time and RSS read from /proc,
// and a teardown that kills every process started here, even on failure.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { generateToken } from "@sloth/client";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The built launchers (run `pnpm exec tsc -b` first). */
export const CLI_BIN = path.join(ROOT, "apps/cli/bin/sloth-runner.js");
export const AGENTD_BIN = path.join(ROOT, "apps/agentd/bin/sloth-agentd.js");

const children = new Set<ChildProcess>();
const dirs: string[] = [];

/** Kills every child started here and removes the temp dirs. */
export function teardown(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid) {
      try {
        process.kill(c.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }
  children.clear();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}
process.on("exit", teardown);
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    teardown();
    process.exit(130);
  });
}

/** A temp dir removed at teardown. */
export function tempDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** A child process whose output is collected (and so always drained). */
export interface Proc {
  child: ChildProcess;
  pid: number;
  output(): string;
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  stop(): Promise<void>;
}

/** Spawns `node [nodeArgs] script ...args`, tracked for teardown. */
export function spawnNode(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  nodeArgs: string[] = [],
): Proc {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1", ...env },
  });
  children.add(child);
  let out = "";
  // Keep only the tail: a master logs one line per registration.
  const keep = (b: Buffer) => {
    out += b.toString("utf8");
    if (out.length > 64_000) out = out.slice(-32_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>((r) => child.once("close", () => r()));
  return {
    child,
    pid: child.pid ?? 0,
    output: () => out,
    async waitFor(re, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = re.exec(out);
        if (m) return m;
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`process exited before printing ${re}:\n${out}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}:\n${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
      children.delete(child);
    },
  };
}

/** A master child process with production timers. */
export interface MasterProc extends Proc {
  address: string;
  token: string;
  tokenFile: string;
  dataDir: string;
}

/**
 * Starts `sloth-runner master start` on 127.0.0.1 and a free port. With
 * SLOTH_BENCH_PROF=DIR the master writes a CPU profile there when it stops.
 */
export async function startMaster(): Promise<MasterProc> {
  const prof = process.env.SLOTH_BENCH_PROF;
  const dataDir = tempDir("sloth-bench-master-");
  const token = generateToken();
  const tokenFile = path.join(dataDir, "token");
  fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const p = spawnNode(
    CLI_BIN,
    [
      "master",
      "start",
      "--data-dir",
      dataDir,
      "--token-file",
      tokenFile,
      "--port",
      "0",
      "--bind",
      "127.0.0.1",
    ],
    {},
    prof ? ["--cpu-prof", "--cpu-prof-dir", prof] : [],
  );
  const m = await p.waitFor(/Master listening on \S+?:(\d+)/);
  return { ...p, address: `127.0.0.1:${m[1]}`, token, tokenFile, dataDir };
}

/** An agent child process. */
export interface AgentProc extends Proc {
  name: string;
  address: string;
}

/** Starts `sloth-agentd` registered with `master`; resolves once registered. */
export async function startAgent(
  master: MasterProc,
  name: string,
  dataDir = tempDir("sloth-bench-agent-"),
): Promise<AgentProc> {
  const p = spawnNode(AGENTD_BIN, [
    "--name",
    name,
    "--master",
    master.address,
    "--token-file",
    master.tokenFile,
    "--data-dir",
    dataDir,
    "--port",
    "0",
    "--bind-address",
    "127.0.0.1",
  ]);
  const m = await p.waitFor(/listening on \S+?:(\d+)/);
  await p.waitFor(/registered/);
  return { ...p, name, address: `127.0.0.1:${m[1]}` };
}

const TICK = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

/** CPU time (user + system) of process `pid` in ms, from /proc. */
export function cpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the parenthesised command name; utime and stime are 14 and 15.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICK;
}

/** Resident set size of process `pid` in bytes, from /proc. */
export function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** Formats bytes as MiB. */
export const mib = (b: number): string => `${(b / 1048576).toFixed(1)} MiB`;

/** Runs `bash -c cmd` locally with piped output, as an agent does; resolves at close. */
export function localBash(cmd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn("bash", ["-c", cmd], { stdio: ["ignore", "pipe", "pipe"] });
    c.stdout.resume();
    c.stderr.resume();
    c.once("error", reject);
    c.once("close", (code) => resolve(code ?? -1));
  });
}

/** Calls `op` with `concurrency` in flight for `seconds`; completions per second. */
export async function rateAt(
  concurrency: number,
  seconds: number,
  op: () => Promise<unknown>,
): Promise<number> {
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      await op();
      n++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return n / ((performance.now() - start) / 1000);
}
