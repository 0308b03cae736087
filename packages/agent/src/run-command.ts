import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";

/** A command to run with `bash -c`. */
export interface CommandRequest {
  command: string;
  /** Working directory; empty or omitted means `defaultWorkdir`. */
  workdir?: string | undefined;
  /** Variables added to the agent's environment. */
  env?: Readonly<Record<string, string>> | undefined;
  /** Kill the process group after this many ms; 0 or omitted: no limit. */
  timeoutMs?: number | undefined;
}

/** How the command ended. */
export interface CommandResult {
  /** Exit code, or -1 when killed by a signal or not started. */
  exitCode: number;
  /** Signal name such as "SIGTERM", or "" when the command exited. */
  signal: string;
  signalNumber: number;
  durationMs: number;
  timedOut: boolean;
  /** Why bash could not start; "" when it started. */
  startError: string;
}

/** One event of a run, in the order produced. */
export type CommandEvent =
  | { type: "started"; pid: number }
  | { type: "output"; stream: "stdout" | "stderr"; data: Uint8Array }
  | ({ type: "exit" } & CommandResult);

/** Options of {@link runCommand}. */
export interface RunCommandOptions {
  /** Aborting kills the command's process group (the caller went away). */
  signal?: AbortSignal | undefined;
  /** Directory used when the request names none (default: process.cwd()). */
  defaultWorkdir?: string | undefined;
  /** Environment the request's variables are added to (default: process.env). */
  baseEnv?: NodeJS.ProcessEnv | undefined;
  /** Time between SIGTERM and SIGKILL when killing (default 2000 ms). */
  killGraceMs?: number | undefined;
  /**
   * After bash exits, wait this long for output to stop before closing the
   * pipes (default 1000 ms). Background children that keep the pipes open
   * would otherwise hold the run forever.
   */
  exitDrainMs?: number | undefined;
  /** Output held while the consumer lags before the pipes pause (default 1 MiB). */
  highWaterBytes?: number | undefined;
}

/** Variables never passed to commands: the cluster token is the agent's, not theirs. */
const PRIVATE_ENV = ["SLOTH_RUNNER_TOKEN"];

/**
 * Runs `bash -c <command>` in its own process group and yields its output as
 * read (chunks never decoded or re-split, stdout and stderr in arrival order),
 * then its exit. Memory stays bounded: when the consumer stops pulling, the
 * child's pipes are paused, so the child blocks on write instead of the agent
 * buffering. Timeout, `signal` and abandoning the iterator kill the whole
 * group: SIGTERM, then SIGKILL after the grace.
 */
export async function* runCommand(
  request: CommandRequest,
  options: RunCommandOptions = {},
): AsyncGenerator<CommandEvent, void, undefined> {
  const workdir = path.resolve(options.defaultWorkdir ?? process.cwd(), request.workdir || ".");
  const workdirProblem = await checkWorkdir(workdir);
  if (workdirProblem) {
    yield notStarted(`cannot run command: ${workdirProblem}`);
    return;
  }
  if (options.signal?.aborted) return;

  const env: NodeJS.ProcessEnv = { ...(options.baseEnv ?? process.env) };
  for (const name of PRIVATE_ENV) delete env[name];
  Object.assign(env, request.env);

  const startedAt = performance.now();
  let child: ChildProcess;
  try {
    child = spawn("bash", ["-c", request.command], {
      cwd: workdir,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (err) {
    // Arguments Node refuses outright, such as NUL bytes in the command or env.
    yield notStarted(`cannot run command: ${(err as Error).message}`);
    return;
  }
  const pid = child.pid;
  if (pid === undefined) {
    const err = await new Promise<Error>((resolve) => child.once("error", resolve));
    yield notStarted(`cannot run command: ${err.message}`);
    return;
  }
  const run = new ChildWatch(child, pid, options);
  const onAbort = () => run.kill();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const timeoutMs = request.timeoutMs ?? 0;
  // Longer than a timer can hold (about 24.8 days) counts as no limit, rather
  // than firing at once as an overflowing setTimeout would.
  const timeout =
    timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS
      ? setTimeout(() => {
          run.timedOut = true;
          run.kill();
        }, timeoutMs)
      : undefined;
  try {
    yield { type: "started", pid };
    for (;;) {
      const chunk = run.next();
      if (chunk) {
        yield { type: "output", stream: chunk.stream, data: chunk.data };
      } else if (run.finished) {
        break;
      } else {
        await run.changed();
      }
    }
    const { code, signal } = run.exit ?? { code: null, signal: null };
    yield {
      type: "exit",
      exitCode: code ?? -1,
      signal: signal ?? "",
      signalNumber: signal ? (os.constants.signals[signal] ?? 0) : 0,
      durationMs: Math.round((run.exitedAt ?? performance.now()) - startedAt),
      timedOut: run.timedOut,
      startError: "",
    };
  } finally {
    clearTimeout(timeout);
    options.signal?.removeEventListener("abort", onAbort);
    // Reached early when the consumer stopped iterating: nobody is left to
    // read the output, so the command must not outlive the call.
    if (!run.finished) run.kill();
    run.dispose();
  }
}

/** The longest delay setTimeout accepts. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Largest output message built by joining queued reads. */
const MAX_MESSAGE_BYTES = 256 * 1024;

interface Chunk {
  stream: "stdout" | "stderr";
  data: Buffer;
}

/** Tracks one child: its queued output, exit and kill state. */
class ChildWatch {
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
    child: ChildProcess,
    private readonly pid: number,
    options: RunCommandOptions,
  ) {
    this.highWater = options.highWaterBytes ?? 1 << 20;
    this.killGraceMs = options.killGraceMs ?? 2000;
    this.exitDrainMs = options.exitDrainMs ?? 1000;
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

async function checkWorkdir(dir: string): Promise<string | undefined> {
  try {
    const st = await fs.stat(dir);
    return st.isDirectory() ? undefined : `workdir ${dir} is not a directory`;
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return `workdir ${dir} does not exist`;
    return `workdir ${dir} is not accessible (${code ?? (cause as Error).message})`;
  }
}

function notStarted(startError: string): CommandEvent {
  return {
    type: "exit",
    exitCode: -1,
    signal: "",
    signalNumber: 0,
    durationMs: 0,
    timedOut: false,
    startError,
  };
}
