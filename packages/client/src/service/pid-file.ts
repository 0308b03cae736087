import fs from "node:fs";
import path from "node:path";
import { SlothError } from "../errors.js";

/** True when a process with `pid` exists (and may be signalled). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  // A process that exited but is not reaped yet (a zombie: its parent, such
  // as PID 1 in a container, has not waited for it) still takes signals.
  return !exited(pid);
}

/** True when /proc shows `pid` as a zombie (or dead); false without /proc. */
function exited(pid: number): boolean {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state === "Z" || state === "X";
}

/**
 * When the process `pid` started, in clock ticks since boot (field 22 of
 * /proc/PID/stat): with the pid, it names one process for good, since a pid
 * is reused only by a process started later. Undefined without /proc.
 */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[19];
}

/** True when /proc shows `pid` running a Sloth Runner program (node running sloth-*). */
function looksLikeSloth(pid: number): boolean | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("sloth");
  } catch {
    return undefined;
  }
}

/** What a pid file says. */
export interface PidFileState {
  pid: number;
  /**
   * False when the file is stale: its process is gone, or the pid now
   * belongs to another process (it started later than the one recorded).
   */
  alive: boolean;
}

/** Reads a pid file; undefined when it is missing or unreadable. */
export function readPidFile(file: string): PidFileState | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  const [first, started] = text.split("\n").map((l) => l.trim());
  const pid = Number.parseInt(first ?? "", 10);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  if (!processAlive(pid)) return { pid, alive: false };
  const now = processStartTime(pid);
  if (now === undefined) return { pid, alive: true };
  // A file without a start time (older versions): trust a Sloth process only.
  if (!started) return { pid, alive: looksLikeSloth(pid) !== false };
  return { pid, alive: now === started };
}

/**
 * Writes `pid` to `file` (0600). Refuses when the file names a live process;
 * a stale file (its process is gone) is replaced. Returns the stale pid, if any.
 */
export function claimPidFile(file: string, pid: number, what: string): number | undefined {
  const existing = readPidFile(file);
  if (existing?.alive && existing.pid !== pid) {
    throw new SlothError(
      "SLOTH_INVALID_ARGUMENT",
      `${what} is already running (pid ${existing.pid})`,
      {
        hint: `stop it first, or remove ${file} if that process is not ${what}`,
        details: { pid: existing.pid },
      },
    );
  }
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const started = processStartTime(pid);
  fs.writeFileSync(file, started ? `${pid}\n${started}\n` : `${pid}\n`, { mode: 0o600 });
  return existing && !existing.alive ? existing.pid : undefined;
}

/** Removes `file` if it still names `pid`. */
export function releasePidFile(file: string, pid: number): void {
  if (readPidFile(file)?.pid === pid) fs.rmSync(file, { force: true });
}

/** How {@link stopPidFile} ended. */
export type StopOutcome = "stopped" | "killed" | "not-running" | "stale";

/**
 * Stops the process named in `file`: SIGTERM, wait up to `graceMs`
 * (default 10 s), then SIGKILL. Removes the pid file.
 */
export async function stopPidFile(
  file: string,
  graceMs = 10_000,
): Promise<{ outcome: StopOutcome; pid?: number }> {
  const state = readPidFile(file);
  if (!state) return { outcome: "not-running" };
  if (!state.alive) {
    fs.rmSync(file, { force: true });
    return { outcome: "stale", pid: state.pid };
  }
  process.kill(state.pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!processAlive(state.pid)) {
      fs.rmSync(file, { force: true });
      return { outcome: "stopped", pid: state.pid };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    process.kill(state.pid, "SIGKILL");
  } catch {
    // It exited just now.
  }
  fs.rmSync(file, { force: true });
  return { outcome: "killed", pid: state.pid };
}
