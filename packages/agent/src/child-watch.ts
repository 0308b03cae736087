import type { Readable } from "node:stream";
import type { StartedChild } from "./spawner.js";

/** Limits of one watched child. */
export interface ChildWatchOptions {
  /** Output queued before the pipes pause. */
  highWaterBytes: number;
  /** SIGTERM to SIGKILL delay. */
  killGraceMs: number;
  /** Quiet time after exit before the pipes are closed. */
  exitDrainMs: number;
}

/** Largest output message built by joining queued reads. */
const MAX_MESSAGE_BYTES = 256 * 1024;

/** Output read from one pipe. */
export interface Chunk {
  stream: "stdout" | "stderr";
  data: Buffer;
}

/**
 * Tracks one child of runCommand: its queued output (pausing the pipes
 * above the high-water mark), its exit, and killing its process group.
 */
export class ChildWatch {
  timedOut = false;
  finished = false;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  exitedAt: number | undefined;
  private readonly queue: Chunk[] = [];
  private queued = 0;
  private paused = false;
  private wake: (() => void) | undefined;
  private killing = false;
  private killTimer: NodeJS.Timeout | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private readonly pipes: Readable[];
  private readonly highWater: number;
  private readonly killGraceMs: number;
  private readonly exitDrainMs: number;

  constructor(
    child: StartedChild,
    private readonly pid: number,
    options: ChildWatchOptions,
  ) {
    this.highWater = options.highWaterBytes;
    this.killGraceMs = options.killGraceMs;
    this.exitDrainMs = options.exitDrainMs;
    const stdout = child.stdout as Readable;
    const stderr = child.stderr as Readable;
    this.pipes = [stdout, stderr];
    stdout.on("data", (data: Buffer) => this.push("stdout", data));
    stderr.on("data", (data: Buffer) => this.push("stderr", data));
    child.once("exit", (code, signal) => {
      this.exit = { code, signal };
      this.exitedAt = performance.now();
      this.armDrainTimer();
      this.notify();
    });
    child.once("close", () => this.finish());
    // After a successful spawn, errors come from kill() or the pipes; the
    // exit or close that follows ends the run.
    child.on("error", () => {});
  }

  /** The next chunk, releasing backpressure once the queue has drained. */
  next(): Chunk | undefined {
    const first = this.queue.shift();
    if (!first) return undefined;
    // While the consumer lags, adjacent reads of one stream travel as one
    // message: fewer, larger messages are what the RPC stack moves fastest.
    // Bytes and order are kept; nothing is split.
    let parts: Buffer[] | undefined;
    let size = first.data.length;
    for (
      let c = this.queue[0];
      c?.stream === first.stream && size + c.data.length <= MAX_MESSAGE_BYTES;
      c = this.queue[0]
    ) {
      this.queue.shift();
      parts ??= [first.data];
      parts.push(c.data);
      size += c.data.length;
    }
    const chunk = parts ? { stream: first.stream, data: Buffer.concat(parts, size) } : first;
    this.queued -= size;
    if (this.paused && this.queued <= this.highWater / 2) {
      this.paused = false;
      for (const p of this.pipes) p.resume();
    }
    return chunk;
  }

  /** Resolves at the next output, exit or close. */
  changed(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  /** Kills the process group: SIGTERM now, SIGKILL after the grace. Once. */
  kill(): void {
    if (this.killing) return;
    this.killing = true;
    signalGroup(this.pid, "SIGTERM");
    // Not cleared on close: grandchildren ignoring SIGTERM may outlive bash.
    this.killTimer = setTimeout(() => signalGroup(this.pid, "SIGKILL"), this.killGraceMs);
    this.killTimer.unref();
  }

  dispose(): void {
    clearTimeout(this.drainTimer);
    for (const p of this.pipes) p.destroy();
  }

  private push(stream: Chunk["stream"], data: Buffer): void {
    this.queue.push({ stream, data });
    this.queued += data.length;
    if (!this.paused && this.queued >= this.highWater) {
      this.paused = true;
      for (const p of this.pipes) p.pause();
    }
    if (this.exit) this.armDrainTimer();
    this.notify();
  }

  private armDrainTimer(): void {
    clearTimeout(this.drainTimer);
    if (this.finished) return;
    this.drainTimer = setTimeout(() => {
      // A paused pipe is quiet because of us, not because output stopped.
      if (this.paused) return this.armDrainTimer();
      for (const p of this.pipes) p.destroy();
      this.finish();
    }, this.exitDrainMs);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.drainTimer);
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the whole group is already gone.
  }
}
