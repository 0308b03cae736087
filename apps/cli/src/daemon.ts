import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CliError } from "./context.js";

/** Set in the environment of a daemonised child. */
export const DAEMON_ENV = "SLOTH_RUNNER_DAEMON";

/** A message from a daemonised child to the process that started it. */
export type DaemonMessage = { type: "ready"; address: string } | { type: "error"; message: string };

/** True in a child started by {@link startDaemon}. */
export function isDaemonChild(): boolean {
  return process.env[DAEMON_ENV] === "1" && typeof process.send === "function";
}

/** Tells the starting process how start-up went (no-op outside a daemon child). */
export function notifyParent(msg: DaemonMessage): void {
  // Once: later calls (an agent retrying its registration) find the channel
  // closed, and a send on a closed channel is an 'error' event that would
  // crash the daemon.
  if (!isDaemonChild() || !process.connected) return;
  try {
    // With a callback, a failed send is reported there, not as an 'error' event.
    process.send?.(msg, undefined, undefined, () => {});
    if (msg.type === "ready") process.disconnect?.();
  } catch {
    // The parent has gone: nothing to tell.
  }
}

/** Options of {@link startDaemon}. */
export interface DaemonOptions {
  /** The CLI arguments to run in the background (without --daemon). */
  args: string[];
  logFile: string;
  pidFile: string;
  /** "master" or "agent 'web-1'", for messages. */
  what: string;
  readyTimeoutMs?: number;
}

/**
 * Starts this CLI in the background with its output appended to the log
 * file, and waits until it listens (then prints where) or fails (then
 * throws its error). The token reaches the child through the environment or
 * a file, never its arguments.
 */
export async function startDaemon(o: DaemonOptions): Promise<{ pid: number; address: string }> {
  const { readPidFile, releasePidFile } = await import("@sloth/client");
  const running = readPidFile(o.pidFile);
  if (running?.alive) {
    throw new CliError(`${o.what} is already running (pid ${running.pid})`, {
      hint: `stop it first, or remove ${o.pidFile} if that process is not ${o.what}`,
    });
  }
  fs.mkdirSync(path.dirname(o.logFile), { recursive: true, mode: 0o700 });
  const log = fs.openSync(o.logFile, "a", 0o600);
  const bin = fileURLToPath(new URL("../bin/sloth-runner.js", import.meta.url));
  const child = spawn(process.execPath, [bin, ...o.args], {
    detached: true,
    stdio: ["ignore", log, log, "ipc"],
    env: { ...process.env, [DAEMON_ENV]: "1", NO_COLOR: "1" },
  });
  fs.closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new CliError(`cannot start ${o.what} in the background`);
  const outcome = await new Promise<DaemonMessage | { type: "exit"; code: number | null }>(
    (resolve) => {
      const timer = setTimeout(
        () =>
          resolve({
            type: "error",
            message: `${o.what} did not start within ${Math.round((o.readyTimeoutMs ?? 30_000) / 1000)}s`,
          }),
        o.readyTimeoutMs ?? 30_000,
      );
      child.once("message", (m: DaemonMessage) => {
        clearTimeout(timer);
        resolve(m);
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        resolve({ type: "exit", code });
      });
    },
  );
  if (outcome.type === "ready") {
    if (child.connected) child.disconnect();
    child.unref();
    return { pid, address: outcome.address };
  }
  if (outcome.type === "error") {
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once("exit", () => resolve());
    });
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // Already gone.
    }
    // Leave no pid file behind for a process that never started.
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000).unref())]);
    releasePidFile(o.pidFile, pid);
    throw new CliError(outcome.message.replace(/^error:\s*/, ""), { hint: `see ${o.logFile}` });
  }
  throw new CliError(`${o.what} exited during start-up (code ${outcome.code})`, {
    hint: `see ${o.logFile}`,
  });
}

/** The arguments of this invocation without `--daemon`. */
export function argsWithoutDaemon(): string[] {
  return process.argv.slice(2).filter((a) => a !== "--daemon" && a !== "--daemon=true");
}
