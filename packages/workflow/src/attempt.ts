import type { Condition, TaskContext, TaskModel, TaskOutcome } from "./model.js";
import { runShell } from "./shell.js";
import type { DelegateExecutor } from "./types.js";

/** Why an attempt's signal was aborted. */
export type StopReason =
  | {
      kind: "timeout";
      timeoutMs: number;
      /** The run's own signal: work still finishing after the timeout stops when it aborts. */
      runSignal?: AbortSignal | undefined;
    }
  | { kind: "stop"; message: string };

/** How an attempt ended. */
export type AttemptResult =
  | { kind: "done"; outcome: TaskOutcome }
  | { kind: "timeout"; timeoutMs: number }
  | { kind: "stopped"; message: string };

/** What an attempt needs besides the task and its context. */
export interface AttemptEnv {
  env: NodeJS.ProcessEnv;
  outputLimit: number | undefined;
  killGraceMs: number | undefined;
  delegate: DelegateExecutor | undefined;
}

/**
 * How long a delegated attempt that timed out here may take to bring back
 * the agent's report of the same timeout and the changes made before it.
 */
export const DELEGATED_TIMEOUT_WAIT_MS = 30_000;

/** Runs one attempt of a task's command; `ctx.signal` carries a {@link StopReason}. */
export async function runAttempt(
  task: TaskModel,
  ctx: TaskContext,
  env: AttemptEnv,
): Promise<AttemptResult> {
  const work = execute(task, ctx, env);
  // A shell command resolves only once its process group is gone: wait for
  // that, so no process outlives its task. Functions may ignore the signal.
  const kill = env.killGraceMs ?? 2000;
  // A delegated task's agent enforces the same deadline and then sends its
  // result and the workspace changes made so far: they are waited for.
  const delegated = task.delegateTo !== undefined && env.delegate !== undefined;
  const settled = runsShellLocally(task, env)
    ? await settle(work)
    : await untilAborted(ctx.signal, work, (reason) =>
        delegated && (reason as StopReason | undefined)?.kind === "timeout"
          ? Math.max(kill, DELEGATED_TIMEOUT_WAIT_MS)
          : kill,
      );
  if (ctx.signal.aborted) return stopped(ctx.signal);
  if (settled.kind === "aborted") return stopped(ctx.signal);
  if (settled.kind === "error") {
    const err = settled.error;
    const retryable = (err as { retryable?: unknown } | null)?.retryable !== false;
    return { kind: "done", outcome: { ok: false, message: errorMessage(err), retryable } };
  }
  return { kind: "done", outcome: settled.value };
}

async function execute(task: TaskModel, ctx: TaskContext, env: AttemptEnv): Promise<TaskOutcome> {
  if (task.delegateTo) {
    if (env.delegate) {
      // undefined: no target is available and the task falls back to local.
      const outcome = await env.delegate(task, ctx);
      if (outcome !== undefined) return outcome;
    } else if (task.delegateTo.fallback !== "local") {
      return {
        ok: false,
        retryable: false,
        message: `task '${task.name}' is delegated to ${describeTarget(task)}: delegation is not available yet`,
      };
    }
  }
  const command = task.command;
  if (!command) return { ok: true };
  if (command.kind === "function") return command.fn(ctx);
  const result = await runShell(command.script, {
    cwd: ctx.workdir,
    env: { ...env.env, SLOTH_TASK: ctx.taskName },
    signal: ctx.signal,
    onOutput: (stream, text) => ctx.log.write(stream, text),
    outputLimit: env.outputLimit,
    killGraceMs: env.killGraceMs,
  });
  const output = { stdout: result.stdout, stderr: result.stderr, exit_code: result.exitCode };
  if (result.exitCode === 0) return { ok: true, output };
  const last = lastLine(result.stderr);
  const message = `command exited with code ${result.exitCode}${last ? `: ${last}` : ""}`;
  return { ok: false, message, output };
}

/** Evaluates a run_if/abort_if condition: a shell one is true on exit 0. */
export async function evaluateCondition(
  condition: Condition,
  ctx: TaskContext,
  env: AttemptEnv,
): Promise<boolean> {
  if (condition.kind === "function") {
    const value: unknown = await condition.fn(ctx);
    if (typeof value !== "boolean") {
      throw new Error(`condition returned ${typeof value}, expected boolean`);
    }
    return value;
  }
  const result = await runShell(condition.script, {
    cwd: ctx.workdir,
    env: { ...env.env, SLOTH_TASK: ctx.taskName },
    signal: ctx.signal,
    outputLimit: 64 * 1024,
    killGraceMs: env.killGraceMs,
  });
  return result.exitCode === 0 && !result.killed;
}

/** "agent 'x'", "agent at 'h:p'", ... for messages and the dry-run plan. */
export function describeTarget(task: TaskModel): string {
  const target = task.delegateTo?.target;
  if (!target) return "local";
  switch (target.kind) {
    case "agent":
      return `agent '${target.name}'`;
    case "address":
      return `agent at '${target.address}'`;
    case "agents":
      return `agents ${target.names.map((n) => `'${n}'`).join(", ")}`;
    case "labels": {
      const labels = Object.entries(target.labels).map(([k, v]) => `${k}=${v}`);
      return `${target.all ? "every agent" : "an agent"} labelled ${labels.join(",")}`;
    }
  }
}

function runsShellLocally(task: TaskModel, env: AttemptEnv): boolean {
  if (task.command?.kind !== "shell") return false;
  return !task.delegateTo || (!env.delegate && task.delegateTo.fallback === "local");
}

function settle<T>(work: Promise<T>): Promise<Settled<T>> {
  return work.then(
    (value): Settled<T> => ({ kind: "value", value }),
    (error: unknown): Settled<T> => ({ kind: "error", error }),
  );
}

type Settled<T> =
  | { kind: "value"; value: T }
  | { kind: "error"; error: unknown }
  | { kind: "aborted" };

/**
 * Waits for `work`; once the signal aborts, waits at most `graceMs` more, so
 * that a function that stops promptly (a Lua worker killing its `exec.run`
 * children) is done before the attempt ends, while one that ignores the
 * signal cannot hold the run.
 */
function untilAborted<T>(
  signal: AbortSignal,
  work: Promise<T>,
  graceMs: (reason: unknown) => number,
): Promise<Settled<T>> {
  return new Promise((resolve) => {
    const onAbort = (): void => {
      const timer = setTimeout(() => resolve({ kind: "aborted" }), graceMs(signal.reason));
      work
        .finally(() => clearTimeout(timer))
        .then(
          () => resolve({ kind: "aborted" }),
          () => resolve({ kind: "aborted" }),
        );
    };
    signal.addEventListener("abort", onAbort, { once: true });
    work
      .then(
        (value) => resolve({ kind: "value", value }),
        (error: unknown) => resolve({ kind: "error", error }),
      )
      .finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function stopped(signal: AbortSignal): AttemptResult {
  const reason = signal.reason as StopReason | undefined;
  if (reason?.kind === "timeout") return { kind: "timeout", timeoutMs: reason.timeoutMs };
  return { kind: "stopped", message: reason?.kind === "stop" ? reason.message : "cancelled" };
}

/** The message of anything thrown. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function lastLine(text: string): string {
  const lines = text.trimEnd().split("\n");
  return (lines[lines.length - 1] ?? "").slice(0, 200);
}
