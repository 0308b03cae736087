import fs from "node:fs";
import os from "node:os";

/** True when a process with this pid exists on this machine (EPERM: it exists, not ours). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A process, as recorded to tell later whether it is still there (a run's runner, a lock's holder). */
export interface ProcessIdentity {
  pid: number;
  host: string;
  /** Linux boot id; undefined elsewhere. */
  bootId: string | undefined;
  /** The process's start time in clock ticks since boot (Linux); undefined elsewhere. */
  pidStart: string | undefined;
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/<pid>/stat, read after the command name (which may hold spaces). */
function startTime(pid: number): string | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

/** The identity of process `pid` (default: this one) on this host. */
export function processIdentity(pid = process.pid): ProcessIdentity {
  return {
    pid,
    host: os.hostname(),
    bootId: readText("/proc/sys/kernel/random/boot_id"),
    pidStart: startTime(pid),
  };
}

/**
 * True when the process recorded as `r` is gone: the host
 * rebooted since, or no process has its pid, or the one that has it started
 * at another time. Runs of other hosts are left alone: their pids mean
 * nothing here.
 */
export function processGone(r: {
  pid: number;
  host: string;
  bootId: string | null;
  pidStart: string | null;
}): boolean {
  if (r.host !== os.hostname()) return false;
  const now = processIdentity(r.pid);
  if (r.bootId && now.bootId && r.bootId !== now.bootId) return true;
  if (!pidAlive(r.pid)) return true;
  return Boolean(r.pidStart && now.pidStart && r.pidStart !== now.pidStart);
}
