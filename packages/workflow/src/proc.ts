// Reading other processes through /proc (Linux): what finding the processes
// a dead runner or agent left behind needs. Every function answers
// undefined when /proc or the process is not there (or not readable).
import fs from "node:fs";

/**
 * The fields of /proc/PID/stat after the command name (which may hold
 * spaces): [0] is the state (R, S, Z, ...), [2] the process group.
 */
export function processStat(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** The value of `name` in a process's environment as it started. */
export function processEnv(pid: number, name: string): string | undefined {
  let environ: string;
  try {
    environ = fs.readFileSync(`/proc/${pid}/environ`, "latin1");
  } catch {
    // Another user's process, or gone.
    return undefined;
  }
  const key = `${name}=`;
  const at = environ.startsWith(key) ? 0 : environ.indexOf(`\0${key}`) + 1;
  if (at === 0 && !environ.startsWith(key)) return undefined;
  const end = environ.indexOf("\0", at);
  return environ.slice(at + key.length, end === -1 ? undefined : end);
}

/** The pids /proc lists, without PID 1 and this process; empty without /proc. */
export function listPids(): number[] {
  let entries: string[];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return [];
  }
  return entries
    .map(Number)
    .filter((pid) => Number.isInteger(pid) && pid > 1 && pid !== process.pid);
}
