import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import { artifactDir, consumeArtifacts, saveArtifacts } from "./artifacts.js";
import {
  type AttemptEnv,
  errorMessage,
  evaluateCondition,
  runAttempt,
  type StopReason,
} from "./attempt.js";
import type { RunEvent } from "./events.js";
import type {
  TaskContext,
  TaskHook,
  TaskLog,
  TaskModel,
  TaskOutcome,
  WorkflowHooks,
} from "./model.js";
import { retryDelay, sleep } from "./retry.js";
import type { Logger, TaskResult } from "./types.js";

/** Everything a task run needs from its run. */
export interface TaskRunEnv extends AttemptEnv {
  hooks: WorkflowHooks;
  artifactRoot: string;
  random: () => number;
  logger: Logger | undefined;
  /** Aborted (with a {@link StopReason}) when the whole run stops. */
  runSignal: AbortSignal;
  emit(event: DistributiveOmit<RunEvent, "runId" | "time">): void;
  /** Where the workflow's own hooks write (workflow.log events). */
  hookLog?: TaskLog | undefined;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A task's result, or the request to abort the run (its abort_if fired). */
export type TaskRunResult = TaskResult & { abortRun?: boolean };

/**
 * Runs one task through its whole life, in this order: abort_if, run_if,
 * workflow on_task_start, pre_hook, consumes, attempts (on_timeout after each
 * timed-out one), artifacts, on_success or on_failure, post_hook, workflow
 * on_task_complete. A stopped run ends it `cancelled` without further hooks.
 */
export async function runTask(
  task: TaskModel,
  makeCtx: (signal: AbortSignal, attempt: number) => TaskContext,
  producers: readonly string[],
  env: TaskRunEnv,
): Promise<TaskRunResult> {
  const started = Date.now();
  const base = makeCtx(env.runSignal, 1);
  // Where the current attempt runs, when a delegate executor says so.
  let agents: string[] | undefined;
  const result = (
    status: TaskResult["status"],
    attempts: number,
    message?: string,
    outcome?: TaskOutcome,
  ): TaskResult => ({
    name: task.name,
    status,
    attempts,
    durationMs: Date.now() - started,
    message,
    output: outcome?.output,
    ...(agents !== undefined && attempts > 0 ? { agents } : {}),
  });
  const cancelled = (attempts: number): TaskRunResult => {
    const reason = stopMessage(env.runSignal);
    env.emit({ type: "task.cancelled", task: task.name, reason, durationMs: Date.now() - started });
    return result("cancelled", attempts, reason);
  };

  try {
    if (task.abortIf && (await evaluateCondition(task.abortIf, base, env))) {
      return { ...result("cancelled", 0, "abort_if is true"), abortRun: true };
    }
    if (task.runIf && !(await evaluateCondition(task.runIf, base, env))) {
      if (env.runSignal.aborted) return cancelled(0);
      env.emit({ type: "task.skipped", task: task.name, reason: "run_if is false" });
      return result("skipped", 0, "run_if is false");
    }
  } catch (err) {
    if (env.runSignal.aborted) return cancelled(0);
    return finish(task, base, env, result, 0, {
      ok: false,
      message: `condition failed: ${errorMessage(err)}`,
    });
  }
  if (env.runSignal.aborted) return cancelled(0);

  env.emit({ type: "task.started", task: task.name, attempt: 1 });
  await callHook(env, task.name, "on_task_start", () =>
    env.hooks.onTaskStart?.(task.name, env.hookLog),
  );
  try {
    await task.hooks.pre?.(base);
  } catch (err) {
    return finish(task, base, env, result, 0, {
      ok: false,
      message: `pre_hook failed: ${errorMessage(err)}`,
    });
  }
  try {
    // A stat is far cheaper than a mkdir round trip through the thread pool.
    if (!existsSync(base.workdir)) await fs.mkdir(base.workdir, { recursive: true });
    await consumeArtifacts(task.consumes, env.artifactRoot, producers, base.workdir);
  } catch (err) {
    return finish(task, base, env, result, 0, { ok: false, message: errorMessage(err) });
  }

  let attempt = 1;
  for (;;) {
    if (env.runSignal.aborted) return cancelled(attempt - 1);
    const controller = new AbortController();
    const onRunStop = (): void => controller.abort(env.runSignal.reason);
    env.runSignal.addEventListener("abort", onRunStop, { once: true });
    const timeoutMs = task.timeoutMs;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(
            () =>
              controller.abort({
                kind: "timeout",
                timeoutMs,
                runSignal: env.runSignal,
              } satisfies StopReason),
            timeoutMs,
          );
    const ctx = makeCtx(controller.signal, attempt);
    if (timeoutMs !== undefined) ctx.deadline = Date.now() + timeoutMs;
    agents = undefined;
    ctx.placed = (on) => {
      agents = [...on];
    };
    const ended = await runAttempt(task, ctx, env);
    clearTimeout(timer);
    env.runSignal.removeEventListener("abort", onRunStop);

    if (ended.kind === "stopped") return cancelled(attempt);
    // The attempt's signal may be aborted (timeout); hooks after it get the
    // run's signal, or a Lua hook would be stopped before it starts.
    const after = makeCtx(env.runSignal, attempt);
    let outcome: TaskOutcome;
    if (ended.kind === "timeout") {
      env.emit({ type: "task.timed_out", task: task.name, attempt, timeoutMs: ended.timeoutMs });
      outcome = { ok: false, message: `timed out after ${formatMs(ended.timeoutMs)}` };
      await callTaskHook(env, task, "on_timeout", task.hooks.onTimeout, after, outcome);
    } else outcome = ended.outcome;

    if (outcome.ok) {
      try {
        if (task.artifacts.length > 0) {
          await saveArtifacts(
            task.artifacts,
            after.workdir,
            artifactDir(env.artifactRoot, task.name),
          );
        }
      } catch (err) {
        return finish(task, after, env, result, attempt, {
          ...outcome,
          ok: false,
          message: errorMessage(err),
        });
      }
      return finish(task, after, env, result, attempt, outcome);
    }
    if (attempt > task.retries || outcome.retryable === false) {
      return finish(task, after, env, result, attempt, outcome);
    }
    const delayMs = retryDelay(attempt - 1, task.retryBackoff, task.retryDelayMs, env.random);
    env.emit({
      type: "task.retrying",
      task: task.name,
      attempt: attempt + 1,
      delayMs,
      message: outcome.message ?? "failed",
    });
    if (!(await sleep(delayMs, env.runSignal))) return cancelled(attempt);
    attempt++;
  }
}

type MakeResult = (
  status: TaskResult["status"],
  attempts: number,
  message?: string,
  outcome?: TaskOutcome,
) => TaskResult;

/** Runs the closing hooks and emits the final event. */
async function finish(
  task: TaskModel,
  ctx: TaskContext,
  env: TaskRunEnv,
  result: MakeResult,
  attempts: number,
  outcome: TaskOutcome,
): Promise<TaskRunResult> {
  const hook = outcome.ok ? task.hooks.onSuccess : task.hooks.onFailure;
  await callTaskHook(env, task, outcome.ok ? "on_success" : "on_failure", hook, ctx, outcome);
  await callTaskHook(env, task, "post_hook", task.hooks.post, ctx, outcome);
  await callHook(env, task.name, "on_task_complete", () =>
    env.hooks.onTaskComplete?.(task.name, outcome.ok, outcome.output, env.hookLog),
  );
  const done = result(
    outcome.ok ? "succeeded" : "failed",
    attempts,
    outcome.message ?? undefined,
    outcome,
  );
  if (outcome.ok) {
    env.emit({
      type: "task.succeeded",
      task: task.name,
      attempts,
      durationMs: done.durationMs,
      message: outcome.message,
      output: outcome.output,
      ...(done.agents ? { agents: done.agents } : {}),
    });
  } else {
    const message = outcome.message ?? "failed";
    env.emit({
      type: "task.failed",
      task: task.name,
      attempts,
      durationMs: done.durationMs,
      message,
      output: outcome.output,
      ...(done.agents ? { agents: done.agents } : {}),
    });
    done.message = message;
  }
  return done;
}

/** A task hook's failure is reported in the task's log and does not change its outcome. */
async function callTaskHook(
  env: TaskRunEnv,
  task: TaskModel,
  name: string,
  hook: TaskHook | undefined,
  ctx: TaskContext,
  outcome: TaskOutcome,
): Promise<void> {
  if (!hook) return;
  await callHook(env, task.name, name, () => hook(ctx, outcome));
}

async function callHook(
  env: TaskRunEnv,
  task: string,
  name: string,
  fn: () => Promise<void> | undefined,
): Promise<void> {
  try {
    await fn();
  } catch (err) {
    env.logger?.warn({ task, hook: name, error: errorMessage(err) }, "hook failed");
    env.emit({
      type: "task.log",
      task,
      stream: "log",
      text: `${name} failed: ${errorMessage(err)}\n`,
    });
  }
}

function stopMessage(signal: AbortSignal): string {
  const reason = signal.reason as StopReason | undefined;
  return reason?.kind === "stop" ? reason.message : "cancelled";
}

/** "1.5s", "250ms", "2m". */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))}s`;
  return `${Number((ms / 60_000).toFixed(1))}m`;
}
