import path from "node:path";
import type { StopReason } from "./attempt.js";
import type { RunStatus } from "./events.js";
import type { TaskContext, TaskModel, TaskOutput, WorkflowModel } from "./model.js";
import { runTask, type TaskRunEnv, type TaskRunResult } from "./task-run.js";
import type { RunOptions, TaskResult } from "./types.js";

/** Why a run stopped early, and the terminal status it leads to. */
export type RunStop = Extract<StopReason, { kind: "stop" }> & {
  status?: RunStatus;
  /** The task whose abort_if fired. */
  task?: string;
};

/** Stops the run unless it is already stopping (the first reason wins). */
export function stopRun(stop: AbortController, reason: RunStop): void {
  if (!stop.signal.aborted) stop.abort(reason);
}

/**
 * Runs a model's tasks as a DAG: tasks whose dependencies are done start in
 * declaration order, up to the limit; tasks that can never run are skipped
 * with the reason. Resolves when nothing is left running.
 */
export class Scheduler {
  /** Each finished task's result. */
  readonly results = new Map<string, TaskResult>();
  /** Outputs of succeeded tasks, as dependents see them. */
  readonly outputs: Record<string, TaskOutput> = {};
  /** Tasks whose dependents must be skipped, with the reason they give. */
  readonly #blocked = new Map<string, string>();
  readonly #pending: TaskModel[];
  readonly #running = new Map<string, Promise<void>>();

  constructor(
    private readonly runId: string,
    private readonly model: WorkflowModel,
    private readonly options: RunOptions,
    private readonly env: TaskRunEnv,
    private readonly stop: AbortController,
    private readonly limits: { maxParallel: number; failFast: boolean },
  ) {
    this.#pending = [...model.tasks];
  }

  /** Runs every task to an end state. */
  async run(): Promise<void> {
    this.#reuse();
    for (;;) {
      this.#schedule();
      if (this.#running.size === 0) return;
      await Promise.race(this.#running.values());
    }
  }

  /** Settles the tasks of `options.completed` without running them. */
  #reuse(): void {
    const done = this.options.completed ?? {};
    for (const task of this.model.tasks) {
      if (!Object.hasOwn(done, task.name)) continue;
      const result = {
        name: task.name,
        status: "succeeded",
        attempts: 0,
        durationMs: 0,
        message: "done in an earlier run",
        output: done[task.name],
      } as const;
      const { attempts, durationMs, message, output } = result;
      this.env.emit({
        type: "task.succeeded",
        task: task.name,
        attempts,
        durationMs,
        message,
        output,
      });
      this.#settle(task, result);
      this.#pending.splice(this.#pending.indexOf(task), 1);
    }
  }

  /** Skips what can never run, then starts what is ready, in declaration order. */
  #schedule(): void {
    for (let i = 0; i < this.#pending.length; ) {
      const task = this.#pending[i]!;
      const stopped = this.stop.signal.reason as RunStop | undefined;
      const blocker = task.dependsOn.find((d) => this.#blocked.has(d));
      if (stopped) this.#skip(task, stopped.message);
      else if (blocker !== undefined) this.#skip(task, this.#blocked.get(blocker)!);
      else if (this.#ready(task)) this.#start(task);
      else {
        i++;
        continue;
      }
      this.#pending.splice(i, 1);
      i = 0; // a skip can block dependents declared earlier
    }
  }

  #ready(task: TaskModel): boolean {
    return (
      this.#running.size < this.limits.maxParallel &&
      task.dependsOn.every((d) => this.results.has(d))
    );
  }

  #start(task: TaskModel): void {
    const makeCtx = (signal: AbortSignal, attempt: number): TaskContext =>
      this.#context(task, signal, attempt);
    const started = Date.now();
    // runTask reports every failure as a result; this catch is for bugs, so
    // that one cannot leave the run waiting forever.
    const done = runTask(task, makeCtx, task.dependsOn, this.env)
      .catch((err: unknown): TaskResult => {
        const message = `cannot run task '${task.name}': ${err instanceof Error ? err.message : String(err)}`;
        const durationMs = Date.now() - started;
        this.env.emit({ type: "task.failed", task: task.name, attempts: 0, durationMs, message });
        return { name: task.name, status: "failed", attempts: 0, durationMs, message };
      })
      .then((res: TaskRunResult) => {
        this.#running.delete(task.name);
        this.#settle(task, res);
        if (res.abortRun) {
          this.env.emit({
            type: "task.cancelled",
            task: task.name,
            reason: "abort_if is true",
            durationMs: res.durationMs,
          });
          const message = `task '${task.name}' aborted the run: abort_if is true`;
          stopRun(this.stop, { kind: "stop", message, status: "aborted", task: task.name });
        } else if (res.status === "failed" && this.limits.failFast) {
          const message = `fail_fast: task '${task.name}' failed`;
          stopRun(this.stop, { kind: "stop", message, status: "failed" });
        }
      });
    this.#running.set(task.name, done);
  }

  #settle(task: TaskModel, res: TaskResult): void {
    this.results.set(task.name, res);
    if (res.status === "failed") this.#blocked.set(task.name, `dependency '${task.name}' failed`);
    if (res.status === "cancelled") {
      this.#blocked.set(task.name, `dependency '${task.name}' was cancelled`);
    }
    if (res.status === "succeeded" && res.output) this.outputs[task.name] = res.output;
  }

  #skip(task: TaskModel, reason: string): void {
    this.env.emit({ type: "task.skipped", task: task.name, reason });
    const result = { name: task.name, status: "skipped", attempts: 0, durationMs: 0 } as const;
    this.#settle(task, { ...result, message: reason });
    this.#blocked.set(task.name, `dependency '${task.name}' was skipped`);
  }

  #context(task: TaskModel, signal: AbortSignal, attempt: number): TaskContext {
    const workdir = path.resolve(this.model.baseDir, task.workdir ?? ".");
    const deps: Record<string, TaskOutput> = {};
    for (const d of task.dependsOn) {
      const out = this.outputs[d];
      if (out) deps[d] = out;
    }
    const emit = this.env.emit;
    return {
      params: {
        ...task.params,
        ...this.options.params,
        task_name: task.name,
        workflow: this.model.name,
        workdir,
      },
      deps,
      values: this.options.values ?? {},
      workdir,
      signal,
      log: { write: (stream, text) => emit({ type: "task.log", task: task.name, stream, text }) },
      runId: this.runId,
      taskName: task.name,
      attempt,
    };
  }
}
