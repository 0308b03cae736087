import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/** The built `sloth-runner` launcher. */
export const CLI_BIN = path.join(REPO_ROOT, "apps/cli/bin/sloth-runner.js");
/** The built `sloth-agentd` launcher. */
export const AGENTD_BIN = path.join(REPO_ROOT, "apps/agentd/bin/sloth-agentd.js");

const cleanups: Array<() => Promise<void> | void> = [];

/** Registers teardown work run by {@link cleanup} (call it in afterEach/afterAll). */
export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

/** Runs every registered teardown, newest first, even when some fail. */
export async function cleanup(): Promise<void> {
  while (cleanups.length) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch {
      // Teardown goes on: one failure must not leak the other processes.
    }
  }
}

/** A temporary directory removed at cleanup. */
export function tempDir(prefix = "sloth-test-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Resolves when `predicate` is true, polling; rejects after `timeoutMs`. */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  { timeoutMs = 20_000, intervalMs = 50, what = "condition" } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await predicate();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${String(last)}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A spawned process with its output collected as it arrives. */
export interface Spawned {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (128+N for signal N). */
  exited: Promise<number>;
  /** Resolves once stdout or stderr contains `text`. */
  waitForOutput(text: string | RegExp, timeoutMs?: number): Promise<void>;
  /** Sends a signal to the process (or its group with `group`). */
  kill(signal?: NodeJS.Signals, group?: boolean): void;
}

const SIGNALS = os.constants.signals as Record<string, number>;

/** Spawns `node <script> ...args`; the process is killed at cleanup. */
export function spawnNode(
  script: string,
  args: string[],
  options: {
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    detached?: boolean;
    stdin?: "ignore" | "pipe";
  } = {},
): Spawned {
  const child = spawn(process.execPath, [script, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0", ...options.env },
    stdio: [options.stdin ?? "ignore", "pipe", "pipe"],
    detached: options.detached ?? false,
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on("data", (b: Buffer) => out.push(b));
  child.stderr?.on("data", (b: Buffer) => err.push(b));
  const exited = new Promise<number>((resolve) => {
    child.on("close", (code, signal) =>
      resolve(code ?? 128 + (signal ? (SIGNALS[signal] ?? 0) : 0)),
    );
  });
  let done = false;
  void exited.then(() => {
    done = true;
  });
  const stdout = () => Buffer.concat(out).toString("utf8");
  const stderr = () => Buffer.concat(err).toString("utf8");
  const spawned: Spawned = {
    child,
    stdout,
    stderr,
    exited,
    waitForOutput: (text, timeoutMs = 30_000) =>
      waitFor(
        () => {
          const all = stdout() + stderr();
          if (typeof text === "string" ? all.includes(text) : text.test(all)) return true;
          if (done) throw new Error(`process exited before printing ${String(text)}:\n${all}`);
          return false;
        },
        {
          timeoutMs,
          what: `output ${String(text)}\n--- output so far ---\n${stdout()}${stderr()}`,
        },
      ).then(() => undefined),
    kill: (signal = "SIGTERM", group = false) => {
      if (done || child.pid === undefined) return;
      try {
        process.kill(group ? -child.pid : child.pid, signal);
      } catch {
        // Already gone.
      }
    },
  };
  onCleanup(async () => {
    if (done) return;
    spawned.kill("SIGKILL", options.detached ?? false);
    await exited;
  });
  return spawned;
}

/** Result of a finished CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built `sloth-runner` to completion. */
export async function runCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  const p = spawnNode(CLI_BIN, args, options);
  const timer = setTimeout(() => p.kill("SIGKILL"), options.timeoutMs ?? 60_000);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/** True when a process with `pid` is running (a zombie, exited but not reaped, is not). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // Exited but not reaped yet (its parent has not waited for it): not alive.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3));
  } catch {
    return true;
  }
}
