import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import type { StopReason } from "./attempt.js";
import { validateWorkflow } from "./dag.js";
import { EventChannel, type RunEvent, type RunStatus } from "./events.js";
import type { TaskContext, TaskModel, TaskOutput, WorkflowModel } from "./model.js";
import { formatMs, runTask, type TaskRunEnv } from "./task-run.js";
import type { RunHandle, RunOptions, RunResult, TaskResult, TaskStatus } from "./types.js";

/**
 * Starts running a workflow and returns at once. Throws a `WorkflowError`
 * before starting when the model is invalid (unknown dependency, cycle, stack
 * keys). The run begins on the next macrotask, so `handle.events` read right
 * away sees every event.
 */
export function runWorkflow(model: WorkflowModel, options: RunOptions = {}): RunHandle {
  validateWorkflow(model);
  const runId = options.runId ?? newRunId();
  const channel = new EventChannel();
  if (options.onEvent) channel.listen(options.onEvent);
  const stop = new AbortController();
  const cancel = (reason = "interrupted"): void => {
    if (!stop.signal.aborted) stop.abort(interrupt(reason));
  };
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

/** Internal stop reasons: which terminal status a stop leads to. */
type RunStop = Extract<StopReason, { kind: "stop" }> & { status?: RunStatus; task?: string };

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
  const maxParallel = options.maxParallel ?? model.config.maxParallelTasks;
  const failFast = options.failFast ?? model.config.failFast;
  const env: TaskRunEnv = {
    env: {
      ...process.env,
      ...options.env,
      SLOTH_RUN_ID: runId,
      SLOTH_WORKFLOW: workflow,
    },
    outputLimit: options.outputLimit,
    killGraceMs: options.killGraceMs,
    delegate: options.delegate,
    hooks: model.hooks,
    artifactRoot: path.join(
      options.dataDir ?? path.join(os.tmpdir(), "sloth-runner"),
      "runs",
      runId,
      "artifacts",
    ),
    random: options.random ?? Math.random,
    logger: options.logger,
    runSignal: stop.signal,
    emit,
  };
  const results = new Map<string, TaskResult>();
  /** Tasks whose dependents must be skipped, with the reason they give. */
  const blocked = new Map<string, string>();
  const outputs: Record<string, TaskOutput> = {};

  options.logger?.debug({ runId, workflow, maxParallel, failFast }, "run started");
  emit({ type: "workflow.started", workflow, tasks: model.tasks.map((t) => t.name) });
  let timer: NodeJS.Timeout | undefined;
  if (model.config.timeoutMs !== undefined) {
    const ms = model.config.timeoutMs;
    timer = setTimeout(() => {
      const reason: RunStop = {
        kind: "stop",
        message: `workflow timed out after ${formatMs(ms)}`,
        status: "failed",
      };
      if (!stop.signal.aborted) stop.abort(reason);
    }, ms);
  }
  try {
    await model.hooks.onStart?.();
  } catch (err) {
    const message = `on_start hook failed: ${err instanceof Error ? err.message : String(err)}`;
    if (!stop.signal.aborted)
      stop.abort({ kind: "stop", message, status: "failed" } satisfies RunStop);
  }

  const pending = [...model.tasks];
  const running = new Map<string, Promise<void>>();
  const settle = (task: TaskModel, res: TaskResult): void => {
    results.set(task.name, res);
    if (res.status === "failed") blocked.set(task.name, `dependency '${task.name}' failed`);
    if (res.status === "cancelled")
      blocked.set(task.name, `dependency '${task.name}' was cancelled`);
    if (res.status === "succeeded" && res.output) outputs[task.name] = res.output;
  };
  const skip = (task: TaskModel, reason: string): void => {
    emit({ type: "task.skipped", task: task.name, reason });
    settle(task, {
      name: task.name,
      status: "skipped",
      attempts: 0,
      durationMs: 0,
      message: reason,
    });
    blocked.set(task.name, `dependency '${task.name}' was skipped`);
  };
  const start = (task: TaskModel): void => {
    const makeCtx = (signal: AbortSignal, attempt: number): TaskContext =>
      contextFor(model, task, options, runId, outputs, signal, attempt, emit);
    const done = runTask(task, makeCtx, task.dependsOn, env).then((res) => {
      running.delete(task.name);
      settle(task, res);
      if (res.abortRun) {
        emit({
          type: "task.cancelled",
          task: task.name,
          reason: "abort_if is true",
          durationMs: res.durationMs,
        });
        const message = `task '${task.name}' aborted the run: abort_if is true`;
        if (!stop.signal.aborted)
          stop.abort({
            kind: "stop",
            message,
            status: "aborted",
            task: task.name,
          } satisfies RunStop);
      } else if (res.status === "failed" && failFast && !stop.signal.aborted) {
        stop.abort({
          kind: "stop",
          message: `fail_fast: task '${task.name}' failed`,
          status: "failed",
        } satisfies RunStop);
      }
    });
    running.set(task.name, done);
  };

  for (;;) {
    // Skip what can never run, then start what is ready, in declaration order.
    for (let i = 0; i < pending.length; ) {
      const task = pending[i]!;
      const stopped = stop.signal.reason as RunStop | undefined;
      const blocker = task.dependsOn.find((d) => blocked.has(d));
      if (stopped) skip(task, stopped.message);
      else if (blocker !== undefined) skip(task, blocked.get(blocker)!);
      else if (running.size < maxParallel && task.dependsOn.every((d) => results.has(d)))
        start(task);
      else {
        i++;
        continue;
      }
      pending.splice(i, 1);
      i = 0; // a skip can unblock nothing but can block earlier-declared dependents
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }
  clearTimeout(timer);

  const counts: Record<TaskStatus, number> = { succeeded: 0, failed: 0, skipped: 0, cancelled: 0 };
  const tasks = model.tasks.map((t) => results.get(t.name)!);
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
      await model.hooks.onComplete?.(status === "succeeded", outputs);
    } catch (err) {
      status = "failed";
      message = `on_complete hook failed: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  const durationMs = Date.now() - started;
  options.logger?.debug({ runId, workflow, status, counts, durationMs }, "run ended");
  const msg = message ?? "";
  if (status === "succeeded") emit({ type: "workflow.completed", workflow, durationMs });
  else if (status === "failed")
    emit({ type: "workflow.failed", workflow, durationMs, message: msg });
  else if (status === "aborted")
    emit({
      type: "workflow.aborted",
      workflow,
      durationMs,
      message: msg,
      task: stopped?.task ?? "",
    });
  else emit({ type: "workflow.interrupted", workflow, durationMs, message: msg });
  return { runId, workflow, status, message, durationMs, tasks, counts };
}

function contextFor(
  model: WorkflowModel,
  task: TaskModel,
  options: RunOptions,
  runId: string,
  outputs: Record<string, TaskOutput>,
  signal: AbortSignal,
  attempt: number,
  emit: TaskRunEnv["emit"],
): TaskContext {
  const workdir = path.resolve(model.baseDir, task.workdir ?? ".");
  const deps: Record<string, TaskOutput> = {};
  for (const d of task.dependsOn) {
    const out = outputs[d];
    if (out) deps[d] = out;
  }
  return {
    params: {
      ...task.params,
      ...options.params,
      task_name: task.name,
      workflow: model.name,
      workdir,
    },
    deps,
    values: options.values ?? {},
    workdir,
    signal,
    log: { write: (stream, text) => emit({ type: "task.log", task: task.name, stream, text }) },
    runId,
    taskName: task.name,
    attempt,
  };
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
