import fs from "node:fs";
import { processStartTime } from "@sloth/client";

/**
 * Every command and delegated task an agent runs gets this variable, which
 * its processes and their children inherit: a mark naming the agent process
 * and the job. The agent keeps the marks of its running jobs in a ledger
 * file. An agent killed with SIGKILL (or by a crash) cannot stop what it had
 * running; the next start of that agent reads the ledger and kills the
 * processes carrying those marks, so a task reported "agent lost" does not
 * go on running unsupervised next to its retry. Processes a job left
 * running on purpose after it ended (a daemon it started) are spared: their
 * job is no longer in the ledger.
 */
export const JOB_MARK_ENV = "SLOTH_AGENT_JOB";

// Under load the ledger is rewritten at most this often (a lone job is
// written at once): a crash within the window can only miss jobs started in it.
const WRITE_DELAY_MS = 100;

interface LedgerFile {
  /** The agent process: `pid:starttime`. */
  agent: string;
  jobs: string[];
}

/** The marks of the jobs running now, mirrored to a file. */
export class JobLedger {
  private readonly running = new Set<string>();
  private readonly agent: string;
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastWrite = Number.NEGATIVE_INFINITY;

  /** Without a file (no /proc, or tests), marks are still handed out. */
  constructor(private readonly file?: string) {
    this.agent = `${process.pid}:${processStartTime(process.pid) ?? Date.now()}`;
  }

  /** A new job's mark, recorded as running (on disk at once, unless a write was just made). */
  begin(): string {
    const mark = `${this.agent}:${++this.seq}`;
    this.running.add(mark);
    if (this.timer === undefined && performance.now() - this.lastWrite >= WRITE_DELAY_MS)
      this.flush();
    else this.schedule();
    return mark;
  }

  /** The job has ended: its processes are its own business from now on. */
  end(mark: string): void {
    if (this.running.delete(mark)) this.schedule();
  }

  /** Writes the ledger now (an empty one is removed). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.file === undefined) return;
    this.lastWrite = performance.now();
    try {
      if (this.running.size === 0) fs.rmSync(this.file, { force: true });
      else {
        const body: LedgerFile = { agent: this.agent, jobs: [...this.running] };
        fs.writeFileSync(`${this.file}.tmp`, JSON.stringify(body), { mode: 0o600 });
        fs.renameSync(`${this.file}.tmp`, this.file);
      }
    } catch {
      // Best effort: the data directory may be read-only.
    }
  }

  private schedule(): void {
    if (this.file === undefined || this.timer !== undefined) return;
    this.timer = setTimeout(() => this.flush(), WRITE_DELAY_MS);
    this.timer.unref();
  }
}

/**
 * Reads the ledger an earlier run of this agent left; when that agent
 * process is gone, kills (SIGKILL) the process groups of the processes that
 * carry one of its running jobs' marks. Removes the ledger; returns the pids
 * found. An unreadable ledger is moved aside (`.unreadable`) and reported
 * through `onUnreadable`. Needs /proc; does nothing without it.
 */
export async function reapOrphans(
  file: string,
  onUnreadable?: (reason: string) => void,
): Promise<number[]> {
  let ledger: LedgerFile;
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return [];
  }
  try {
    ledger = JSON.parse(text) as LedgerFile;
    if (typeof ledger?.agent !== "string") throw new Error("no agent in it");
  } catch (e) {
    // Kept for a look: what it listed may still be running.
    try {
      fs.renameSync(file, `${file}.unreadable`);
    } catch {
      // Read-only folder: it stays where it is.
    }
    onUnreadable?.((e as Error).message);
    return [];
  }
  const [pid, started] = String(ledger.agent).split(":");
  // Still running (the same agent started twice is refused elsewhere): not ours to touch.
  if (Number(pid) !== process.pid && processStartTime(Number(pid)) === started) return [];
  fs.rmSync(file, { force: true });
  const jobs = new Set(Array.isArray(ledger.jobs) ? ledger.jobs.map(String) : []);
  // Loaded here: an agent with no ledger to read never needs the engine at start.
  const { listPids, processEnv, processStat } = await import("@sloth/workflow");
  const ownGroup = processStat(process.pid)?.[2];
  const found: number[] = [];
  for (const p of listPids()) {
    const mark = processEnv(p, JOB_MARK_ENV);
    if (mark === undefined || !jobs.has(mark)) continue;
    found.push(p);
    const group = processStat(p)?.[2];
    const targets = group && group !== "0" && group !== ownGroup ? [-Number(group), p] : [p];
    for (const t of targets) {
      try {
        process.kill(t, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }
  return found;
}
