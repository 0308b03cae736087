import type { RunEvent, RunStatus } from "./events.js";
import type { TaskContext, TaskModel, TaskOutcome, TaskOutput, Value } from "./model.js";

/** A pino-compatible logger; the runner never prints. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * Runs a delegated task somewhere else (on an agent). It resolves to
 * undefined when no target is available and the task's `fallback` is
 * "local": the runner then runs it here. Without an executor, delegated tasks
 * fail with a clear message.
 */
export type DelegateExecutor = (
  task: TaskModel,
  ctx: TaskContext,
) => Promise<TaskOutcome | undefined>;

/** Options of {@link runWorkflow}. Every field is optional. */
export interface RunOptions {
  /** The run's id (default: a time-sortable random id). */
  runId?: string | undefined;
  /**
   * The stack this run deploys. It allows the config's stack keys
   * (require_lock, create_snapshot, validate_before, detect_drift,
   * on_failure = "rollback"), which the caller carries out around the run,
   * as `sloth-runner run STACK -f FILE` does; without it they are refused.
   */
  stack?: string | undefined;
  /** Merged over every task's params (`--param k=v`); these win. */
  params?: Record<string, Value> | undefined;
  /** The run's values (`--values`), seen as `ctx.values`. */
  values?: Record<string, Value> | undefined;
  /** Overrides the workflow's `max_parallel_tasks` (default 4). */
  maxParallel?: number | undefined;
  /** Overrides the workflow's `fail_fast` (default false). */
  failFast?: boolean | undefined;
  /**
   * The data directory; artifacts go to `<dataDir>/runs/<runId>/artifacts/<task>/`.
   * Default: `<os tmpdir>/sloth-runner`.
   */
  dataDir?: string | undefined;
  /** Aborting it interrupts the run (as {@link RunHandle.cancel} does). */
  signal?: AbortSignal | undefined;
  /** Called synchronously for every event, in order; what it throws is logged and ignored. */
  onEvent?: ((event: RunEvent) => void) | undefined;
  /** Runs tasks that have `delegateTo`; without it they fail at once. */
  delegate?: DelegateExecutor | undefined;
  /** Extra environment of shell commands, over `process.env`. */
  env?: Record<string, string> | undefined;
  /** Characters of stdout/stderr kept in a shell task's output (default 1 MiB each). */
  outputLimit?: number | undefined;
  /** Grace between SIGTERM and SIGKILL when killing a task (default 2000 ms). */
  killGraceMs?: number | undefined;
  /**
   * Tasks already done, for resuming a run: each maps to its output
   * (undefined when it succeeded without one). They do not run; each is
   * reported as `task.succeeded` with 0 attempts, and its output reaches
   * dependents as if it had just run. Names not in the model are ignored.
   */
  completed?: Record<string, TaskOutput | undefined> | undefined;
  /** Source of jitter for retry delays (default Math.random). */
  random?: (() => number) | undefined;
  logger?: Logger | undefined;
}

/** How one task ended. */
export type TaskStatus = "succeeded" | "failed" | "skipped" | "cancelled";

/** One task's result. */
export interface TaskResult {
  name: string;
  status: TaskStatus;
  /** Attempts made (0 when it never ran). */
  attempts: number;
  durationMs: number;
  /** The command's message, the failure, or why it was skipped or cancelled. */
  message?: string | undefined;
  output?: TaskOutput | undefined;
  /** The agents its last attempt ran on (absent when it ran here). */
  agents?: string[] | undefined;
}

/** A finished run. */
export interface RunResult {
  runId: string;
  workflow: string;
  status: RunStatus;
  /** Why it did not succeed. */
  message?: string | undefined;
  durationMs: number;
  /** Every task of the model, in declaration order. */
  tasks: TaskResult[];
  counts: Record<TaskStatus, number>;
}

/** A run in progress. */
export interface RunHandle {
  runId: string;
  /**
   * The events from the start of the run, as long as this is read before the
   * next macrotask (the run starts on `setImmediate`); each read of this
   * property is an independent iterator, ending after the final event.
   */
  readonly events: AsyncIterableIterator<RunEvent>;
  /** Settles when the run has ended and every process it started is gone; never rejects. */
  result: Promise<RunResult>;
  /** Interrupts the run: running tasks are killed, it ends `interrupted`. */
  cancel(reason?: string): void;
}
