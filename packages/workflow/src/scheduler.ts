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

/** A min-heap of task positions: the next task in declaration order comes out first. */
class PositionHeap {
  readonly #items: number[] = [];

  get size(): number {
    return this.#items.length;
  }

  peek(): number | undefined {
    return this.#items[0];
  }

  push(value: number): void {
    const a = this.#items;
    let i = a.push(value) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]! <= value) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = value;
  }

  pop(): number | undefined {
    const a = this.#items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && a[r]! < a[l]! ? r : l;
      if (a[c]! >= last) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

/**
 * Runs a model's tasks as a DAG: tasks whose dependencies are done start in
 * declaration order, up to the limit; tasks that can never run are skipped
 * with the reason. Resolves when nothing is left running. Each task's end
 * costs in proportion to its dependents, not to the size of the DAG.
 */
export class Scheduler {
  /** Each finished task's result. */
  readonly results = new Map<string, TaskResult>();
  /** Outputs of succeeded tasks, as dependents see them. */
  readonly outputs: Record<string, TaskOutput> = {};
  /** Tasks whose dependents must be skipped, with the reason they give. */
  readonly #blocked = new Map<string, string>();
  readonly #running = new Map<string, Promise<void>>();
  readonly #tasks: readonly TaskModel[];
  readonly #position = new Map<string, number>();
  /** Positions of the tasks that depend on each task. */
  readonly #dependents: number[][];
  /** Per position: how many distinct dependencies have not ended yet. */
  readonly #waitingOn: number[];
  /** Per position: not yet started or skipped. */
  readonly #pending: boolean[];
  /** All dependencies ended well: can start when there is room. */
  readonly #ready = new PositionHeap();
  /** A dependency ended badly: will be skipped. */
  readonly #doomed = new PositionHeap();
  #wake: (() => void) | undefined;

  constructor(
    private readonly runId: string,
    private readonly model: WorkflowModel,
    private readonly options: RunOptions,
    private readonly env: TaskRunEnv,
    private readonly stop: AbortController,
    private readonly limits: { maxParallel: number; failFast: boolean },
  ) {
    this.#tasks = model.tasks;
    this.#tasks.forEach((t, i) => {
      this.#position.set(t.name, i);
    });
    this.#dependents = this.#tasks.map(() => []);
    this.#waitingOn = this.#tasks.map((t, i) => {
      const deps = new Set(t.dependsOn);
      for (const d of deps) this.#dependents[this.#position.get(d)!]!.push(i);
      return deps.size;
    });
    this.#pending = this.#tasks.map(() => true);
    this.#waitingOn.forEach((n, i) => {
      if (n === 0) this.#ready.push(i);
    });
  }

  /** Runs every task to an end state. */
  async run(): Promise<void> {
    this.#reuse();
    for (;;) {
      this.#schedule();
      if (this.#running.size === 0) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  /** Settles the tasks of `options.completed` without running them. */
  #reuse(): void {
    const done = this.options.completed ?? {};
    this.#tasks.forEach((task, i) => {
      if (!Object.hasOwn(done, task.name)) return;
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
      this.#pending[i] = false;
      this.#settle(task, result);
    });
  }

  /** Skips what can never run, then starts what is ready, in declaration order. */
  #schedule(): void {
    const stopped = this.stop.signal.reason as RunStop | undefined;
    if (stopped) {
      for (let i = 0; i < this.#tasks.length; i++) {
        if (this.#pending[i]) this.#skip(i, stopped.message);
      }
      return;
    }
    for (;;) {
      const doomed = this.#doomed.peek();
      const room = this.#running.size < this.limits.maxParallel;
      const ready = room ? this.#ready.peek() : undefined;
      if (doomed === undefined && ready === undefined) return;
      if (ready === undefined || (doomed !== undefined && doomed < ready)) {
        this.#doomed.pop();
        if (!this.#pending[doomed!]) continue;
        const task = this.#tasks[doomed!]!;
        const blocker = task.dependsOn.find((d) => this.#blocked.has(d))!;
        this.#skip(doomed!, this.#blocked.get(blocker)!);
      } else {
        this.#ready.pop();
        if (!this.#pending[ready]) continue;
        this.#pending[ready] = false;
        this.#start(this.#tasks[ready]!);
      }
    }
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
        this.#wake?.();
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
    const bad = this.#blocked.has(task.name);
    for (const d of this.#dependents[this.#position.get(task.name)!]!) {
      if (!this.#pending[d]) continue;
      if (bad) this.#doomed.push(d);
      else if (--this.#waitingOn[d]! === 0) this.#ready.push(d);
    }
  }

  #skip(position: number, reason: string): void {
    const task = this.#tasks[position]!;
    this.#pending[position] = false;
    this.env.emit({ type: "task.skipped", task: task.name, reason });
    const result = { name: task.name, status: "skipped", attempts: 0, durationMs: 0 } as const;
    // Skipped for a reason of its own: its dependents cannot run either
    // (unlike a task that run_if skipped).
    this.#blocked.set(task.name, `dependency '${task.name}' was skipped`);
    this.#settle(task, { ...result, message: reason });
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
      env: this.options.env,
    };
  }
}
