// Long synchronous loops (a walk of 10,000 files, building a workspace)
// are the fast way to do file I/O here, but an agent's event loop also
// serves heartbeats and other tasks' logs: give it a turn every few
// milliseconds, at the cost of one check per item.
const SLICE_MS = 20;

/** Tells a synchronous loop when to let the event loop run. */
export class Pacer {
  private last = performance.now();

  /** True when the loop has held the event loop for a slice. */
  due(): boolean {
    return performance.now() - this.last > SLICE_MS;
  }

  /** Lets pending I/O callbacks and timers run, then starts a new slice. */
  async pause(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.last = performance.now();
  }
}
