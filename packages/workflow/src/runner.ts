import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import os from "node:os";
import path from "node:path";
import { validateWorkflow } from "./dag.js";
import { EventChannel, type RunEvent, type RunStatus } from "./events.js";
import type { TaskLog, WorkflowModel } from "./model.js";
import { type RunStop, Scheduler, stopRun } from "./scheduler.js";
import { formatMs, type TaskRunEnv } from "./task-run.js";
import type { RunHandle, RunOptions, RunResult, TaskStatus } from "./types.js";

/**
 * Starts running a workflow and returns at once. Throws a `WorkflowError`
 * before starting when the model is invalid (unknown dependency, cycle, stack
 * keys). The run begins on the next macrotask, so `handle.events` read right
 * away sees every event.
 */
export function runWorkflow(model: WorkflowModel, options: RunOptions = {}): RunHandle {
  validateWorkflow(model, { stack: options.stack });
  const runId = options.runId ?? newRunId();
  const channel = new EventChannel();
  if (options.onEvent) channel.listen(options.onEvent);
  channel.onListenerError = (err, event) =>
    options.logger?.error({ event: event.type, error: text(err) }, "event listener failed");
  const stop = new AbortController();
  // Every running task listens on it: no warning past ten.
  setMaxListeners(0, stop.signal);
  const cancel = (reason = "interrupted"): void => stopRun(stop, interrupt(reason));
  const onExternal = (): void => cancel(reasonText(options.signal?.reason));
  options.signal?.addEventListener("abort", onExternal, { once: true });
  const result = new Promise<void>((resolve) => setImmediate(resolve))
    .then(() => {
      if (options.signal?.aborted) onExternal();
      return execute(model, options, runId, channel, stop);
    })
    .finally(() => {
      options.signal?.removeEventListener("abort", onExternal);
      channel.close();
    });
  return {
    runId,
    get events() {
      return channel.subscribe();
    },
    result,
    cancel,
  };
}

function interrupt(message: string): RunStop {
  return { kind: "stop", message, status: "interrupted" };
}

async function execute(
  model: WorkflowModel,
  options: RunOptions,
  runId: string,
  channel: EventChannel,
  stop: AbortController,
): Promise<RunResult> {
  const started = Date.now();
  const emit: TaskRunEnv["emit"] = (event) =>
    channel.emit({ ...event, runId, time: Date.now() } as RunEvent);
  const workflow = model.name;
  const limits = {
    maxParallel: options.maxParallel ?? model.config.maxParallelTasks,
    failFast: options.failFast ?? model.config.failFast,
  };
  const dataDir = options.dataDir ?? path.join(os.tmpdir(), "sloth-runner");
  const hookLog: TaskLog = {
    write: (stream, text) => emit({ type: "workflow.log", workflow, stream, text }),
  };
  const env: TaskRunEnv = {
    env: { ...process.env, ...options.env, SLOTH_RUN_ID: runId, SLOTH_WORKFLOW: workflow },
    outputLimit: options.outputLimit,
    killGraceMs: options.killGraceMs,
    delegate: options.delegate,
    hooks: model.hooks,
    artifactRoot: path.join(dataDir, "runs", runId, "artifacts"),
    random: options.random ?? Math.random,
    logger: options.logger,
    runSignal: stop.signal,
    emit,
    hookLog,
  };
  options.logger?.debug({ runId, workflow, ...limits }, "run started");
  emit({ type: "workflow.started", workflow, tasks: model.tasks.map((t) => t.name) });
  const timeoutMs = model.config.timeoutMs;
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          const message = `workflow timed out after ${formatMs(timeoutMs)}`;
          stopRun(stop, { kind: "stop", message, status: "failed" });
        }, timeoutMs);
  try {
    await model.hooks.onStart?.(hookLog);
  } catch (err) {
    stopRun(stop, {
      kind: "stop",
      message: `on_start hook failed: ${text(err)}`,
      status: "failed",
    });
  }
  const scheduler = new Scheduler(runId, model, options, env, stop, limits);
  await scheduler.run();
  clearTimeout(timer);

  const tasks = model.tasks.map((t) => scheduler.results.get(t.name)!);
  const counts: Record<TaskStatus, number> = { succeeded: 0, failed: 0, skipped: 0, cancelled: 0 };
  for (const t of tasks) counts[t.status]++;
  const stopped = stop.signal.reason as RunStop | undefined;
  let status: RunStatus =
    stopped?.status ?? (counts.failed + counts.cancelled > 0 ? "failed" : "succeeded");
  let message = stopped?.message;
  if (status === "failed" && !message) {
    const failed = tasks.filter((t) => t.status === "failed").map((t) => `'${t.name}'`);
    message = `${failed.length === 1 ? "task" : "tasks"} ${failed.join(", ")} failed`;
  }
  if (status !== "interrupted") {
    try {
      await model.hooks.onComplete?.(status === "succeeded", scheduler.outputs, hookLog);
    } catch (err) {
      status = "failed";
      message = `on_complete hook failed: ${text(err)}`;
    }
  }
  const durationMs = Date.now() - started;
  options.logger?.debug({ runId, workflow, status, counts, durationMs }, "run ended");
  const msg = message ?? "";
  if (status === "succeeded") emit({ type: "workflow.completed", workflow, durationMs });
  else if (status === "failed")
    emit({ type: "workflow.failed", workflow, durationMs, message: msg });
  else if (status === "aborted") {
    const task = stopped?.task ?? "";
    emit({ type: "workflow.aborted", workflow, durationMs, message: msg, task });
  } else emit({ type: "workflow.interrupted", workflow, durationMs, message: msg });
  return { runId, workflow, status, message, durationMs, tasks, counts };
}

function text(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A time-sortable id: UTC timestamp and random hex ("20260101T120000-1a2b3c"). */
function newRunId(): string {
  const stamp = new Date()
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "");
  return `${stamp}-${randomBytes(3).toString("hex")}`;
}

function reasonText(reason: unknown): string {
  if (typeof reason === "string") return reason;
  return "interrupted";
}
