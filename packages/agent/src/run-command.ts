import { type ChildProcess, spawn } from "node:child_process";
import { constants as fsConstants } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ChildWatch } from "./child-watch.js";
import { type StartedChild, startCommand } from "./spawner.js";

/** A command to run with `bash -c`. */
export interface CommandRequest {
  command: string;
  /** Working directory; empty or omitted means `defaultWorkdir`. */
  workdir?: string | undefined;
  /** Variables added to the agent's environment. */
  env?: Readonly<Record<string, string>> | undefined;
  /** Kill the process group after this many ms; 0 or omitted: no limit. */
  timeoutMs?: number | undefined;
  /** Program and arguments to run instead of `bash -c command` (`command` then only names it in logs). */
  argv?: readonly [string, ...string[]] | undefined;
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
  /**
   * The command's standard input, written as it comes; its end closes the
   * input. Without it the command's input is /dev/null.
   */
  stdin?: AsyncIterable<Uint8Array> | undefined;
  /**
   * Fork through the agent's small spawner process (default true on Linux):
   * starting a command then costs the same however much memory the agent
   * holds. False spawns from this process.
   */
  spawner?: boolean | undefined;
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
  if (options.signal?.aborted) return;
  // The workdir is looked at only when the start fails (a missing or
  // unusable one fails it): the happy path spends no stat on it.
  const failed = async (err: Error) => {
    const problem = await checkWorkdir(workdir);
    return notStarted(problem ? `cannot run command: ${problem}` : startFailure(err, request));
  };

  const env: NodeJS.ProcessEnv = { ...(options.baseEnv ?? process.env) };
  for (const name of PRIVATE_ENV) delete env[name];
  Object.assign(env, request.env);

  const startedAt = performance.now();
  const [file, ...args] = request.argv ?? ["bash", "-c", request.command];
  let child: StartedChild;
  let pid: number;
  let stdin: NodeJS.WritableStream | undefined;
  // Commands with an input are spawned here (the helper passes output pipes only).
  const viaHelper =
    options.spawner === false || options.stdin ? undefined : startCommand(file, args, workdir, env);
  if (viaHelper) {
    const started = await viaHelper;
    if ("error" in started) {
      yield await failed(started.error);
      return;
    }
    child = started.child;
    pid = started.pid;
  } else {
    let direct: ChildProcess;
    try {
      direct = spawn(file, args, {
        cwd: workdir,
        env,
        detached: true,
        stdio: [options.stdin ? "pipe" : "ignore", "pipe", "pipe"],
      });
    } catch (err) {
      // Arguments Node refuses outright, such as NUL bytes in the command or env.
      yield await failed(err as Error);
      return;
    }
    if (direct.pid === undefined) {
      const err = await new Promise<Error>((resolve) => direct.once("error", resolve));
      yield await failed(err);
      return;
    }
    child = direct;
    pid = direct.pid;
    stdin = direct.stdin ?? undefined;
  }
  const run = new ChildWatch(child, pid, {
    highWaterBytes: options.highWaterBytes ?? 1 << 20,
    killGraceMs: options.killGraceMs ?? 2000,
    exitDrainMs: options.exitDrainMs ?? 1000,
  });
  const onAbort = () => run.kill();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  // Aborted while the helper was starting it.
  if (options.signal?.aborted) run.kill();
  if (options.stdin && stdin) void pumpInput(options.stdin, stdin, () => run.finished);
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
    if ("lost" in child && child.lost)
      yield {
        type: "output",
        stream: "stderr",
        data: Buffer.from(
          "sloth-agentd: the exit status of this command was lost (the agent's spawner process stopped)\n",
        ),
      };
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

/**
 * Copies `input` into a child's stdin, waiting when its pipe is full; ends
 * it when the input ends. A child that exited or closed its input (EPIPE)
 * simply stops the copy; so does a failing input.
 */
async function pumpInput(
  input: AsyncIterable<Uint8Array>,
  stdin: NodeJS.WritableStream & { destroyed?: boolean },
  finished: () => boolean,
): Promise<void> {
  stdin.on("error", () => {});
  const it = input[Symbol.asyncIterator]();
  try {
    for (let r = await it.next(); !r.done; r = await it.next()) {
      if (finished() || stdin.destroyed) break;
      if (!stdin.write(r.value))
        await new Promise<void>((resolve) => {
          const done = () => {
            stdin.off("drain", done).off("close", done).off("error", done);
            resolve();
          };
          stdin.on("drain", done).on("close", done).on("error", done);
        });
    }
  } catch {
    // The caller's side broke: its input ends here.
  } finally {
    if (!stdin.destroyed) stdin.end();
    void it.return?.();
  }
}

/** The longest delay setTimeout accepts. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What is wrong with a workdir a command could not start in, if anything. */
async function checkWorkdir(dir: string): Promise<string | undefined> {
  try {
    const st = await fs.stat(dir);
    if (!st.isDirectory()) return `workdir ${dir} is not a directory`;
    // Entering it needs search (x) permission, which stat does not.
    await fs.access(dir, fsConstants.X_OK);
    return undefined;
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return `workdir ${dir} does not exist`;
    return `workdir ${dir} is not accessible (${code ?? (cause as Error).message})`;
  }
}

/** Why the command could not start, worded for the one who sent it. */
function startFailure(err: Error, request: CommandRequest): string {
  if (/E2BIG/.test(err.message)) {
    const envBytes = Object.entries(request.env ?? {}).reduce(
      (n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v) + 2,
      0,
    );
    return `cannot run command: the command (${Buffer.byteLength(request.command)} bytes) or its environment (${envBytes} bytes added) is longer than the system allows (128 KiB for one argument or variable); send long scripts as a file, or through standard input`;
  }
  return `cannot run command: ${err.message}`;
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
