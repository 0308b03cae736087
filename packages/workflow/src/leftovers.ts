// A runner killed with SIGKILL (or by a crash) cannot stop its tasks: their
// process groups run on, reparented to init. Every task command carries
// SLOTH_RUN_ID and SLOTH_TASK in its environment, which its children
// inherit, so what a dead run left running can be found again in /proc.
import { listPids, processEnv, processStat } from "./proc.js";

/**
 * The processes still running for run `runId` on behalf of one of `tasks`
 * (by their SLOTH_RUN_ID and SLOTH_TASK), with their process groups.
 * Empty without /proc.
 */
export function findRunLeftovers(
  runId: string,
  tasks: ReadonlySet<string>,
): Array<{ pid: number; task: string; group: number | undefined }> {
  const found: Array<{ pid: number; task: string; group: number | undefined }> = [];
  for (const pid of listPids()) {
    if (processEnv(pid, "SLOTH_RUN_ID") !== runId) continue;
    const task = processEnv(pid, "SLOTH_TASK");
    if (task === undefined || !tasks.has(task)) continue;
    const fields = processStat(pid);
    // A zombie is gone already.
    if (fields === undefined || fields[0] === "Z" || fields[0] === "X") continue;
    const group = Number(fields[2]);
    found.push({ pid, task, group: Number.isInteger(group) && group > 1 ? group : undefined });
  }
  return found;
}

/**
 * Stops what run `runId` left running for the unfinished `tasks` when its
 * runner died: SIGTERM to each process group (never this process's own),
 * SIGKILL to what remains after `graceMs`. Processes that tasks which had
 * ended left running on purpose (a daemon they started) are not touched:
 * pass only the tasks that were running. Returns the processes found.
 */
export async function stopRunLeftovers(
  runId: string,
  tasks: ReadonlySet<string>,
  graceMs = 2000,
): Promise<Array<{ pid: number; task: string }>> {
  const found = findRunLeftovers(runId, tasks);
  if (found.length === 0) return [];
  const own = processStat(process.pid)?.[2];
  const signal = (sig: NodeJS.Signals) => {
    for (const p of findRunLeftovers(runId, tasks)) {
      const targets =
        p.group !== undefined && String(p.group) !== own ? [-p.group, p.pid] : [p.pid];
      for (const t of targets) {
        try {
          process.kill(t, sig);
        } catch {
          // Gone meanwhile.
        }
      }
    }
  };
  signal("SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && findRunLeftovers(runId, tasks).length > 0)
    await new Promise((r) => setTimeout(r, 50));
  signal("SIGKILL");
  return found.map(({ pid, task }) => ({ pid, task }));
}
