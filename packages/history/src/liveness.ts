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

/**
 * True when a run recorded as `running` by `pid` on `host` can no longer
 * end by itself. Runs of other hosts are left alone: their pids mean
 * nothing here.
 */
export function runnerGone(pid: number, host: string): boolean {
  return host === os.hostname() && !pidAlive(pid);
}
