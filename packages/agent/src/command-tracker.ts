import { JobLedger } from "./orphans.js";

/** One command in flight, cancellable by the agent. */
export interface TrackedRun {
  /** Set as SLOTH_AGENT_JOB in its environment (see orphans.ts). */
  readonly mark: string;
  /** Aborted when the caller goes away or the agent gives up waiting at stop. */
  readonly signal: AbortSignal;
  /** Call once the run has ended. */
  release(): void;
}

/**
 * Counts the commands in flight and lets a graceful stop wait for them, then
 * cancel the stragglers.
 */
export class CommandTracker {
  private readonly runs = new Set<AbortController>();
  private idleWaiters: Array<() => void> = [];
  private closed = false;
  private ledger = new JobLedger();

  /** Records the running jobs in this ledger (its file) from now on. */
  useLedger(ledger: JobLedger): void {
    this.ledger = ledger;
  }

  /** Writes the ledger now. */
  flushLedger(): void {
    this.ledger.flush();
  }

  /** Commands running now. */
  get running(): number {
    return this.runs.size;
  }

  /** False once a stop began: new commands are refused. */
  get accepting(): boolean {
    return !this.closed;
  }

  /** Registers a run whose signal follows `callerSignal`. */
  track(callerSignal: AbortSignal): TrackedRun {
    const controller = new AbortController();
    const onCallerAbort = () => controller.abort(callerSignal.reason);
    if (callerSignal.aborted) onCallerAbort();
    else callerSignal.addEventListener("abort", onCallerAbort, { once: true });
    this.runs.add(controller);
    let released = false;
    const ledger = this.ledger;
    const mark = ledger.begin();
    return {
      mark,
      signal: controller.signal,
      release: () => {
        if (released) return;
        released = true;
        ledger.end(mark);
        callerSignal.removeEventListener("abort", onCallerAbort);
        this.runs.delete(controller);
        if (this.runs.size === 0) this.wakeIdle();
      },
    };
  }

  /**
   * Refuses new runs, waits up to `graceMs` for the running ones to finish,
   * cancels the rest, and waits up to `killWaitMs` for them to end.
   */
  async drain(graceMs: number, killWaitMs: number): Promise<void> {
    this.closed = true;
    if (await this.waitIdle(graceMs)) return;
    this.cancelAll();
    await this.waitIdle(killWaitMs);
  }

  /** Cancels every run now, such as on a second stop signal during a drain. */
  cancelAll(): void {
    for (const run of this.runs) run.abort(new Error("agent is stopping"));
  }

  private waitIdle(ms: number): Promise<boolean> {
    if (this.runs.size === 0) return Promise.resolve(true);
    ms = Math.min(ms, 2 ** 31 - 1);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, ms);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(done);
    });
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
