/**
 * The workflow model: what a workflow file (or TypeScript code) declares and
 * what the runner executes. It is independent of Lua: `@sloth/dsl-lua` builds
 * it from Lua files, and programs can build it directly.
 */

/** A duration: milliseconds as a number, or a string such as "30s", "5m", "1h30m". */
export type DurationInput = number | string;

/** Where a task runs when it is delegated to agents. */
export type DelegateTarget =
  /** An agent name, resolved through the master. */
  | { kind: "agent"; name: string }
  /** An agent dialled directly. */
  | { kind: "address"; address: string }
  /** Every named agent, in parallel. */
  | { kind: "agents"; names: string[] }
  /** One (or, with `all`, every) active agent with these labels. */
  | { kind: "labels"; labels: Record<string, string>; all: boolean };

/** A task's delegation, with what to do when no target is available. */
export interface Delegation {
  target: DelegateTarget;
  /** "local" runs the task locally when no target is available. */
  fallback?: "local" | undefined;
}

/** JSON-like values passed between tasks and to Lua. */
export type Value = null | boolean | number | string | Value[] | { [key: string]: Value };

/** A task's output table, as dependents see it in `deps[name]`. */
export type TaskOutput = { [key: string]: Value };

/** Where a task writes log lines (a command's output, `print`, `log.*`). */
export interface TaskLog {
  /** One chunk or line of text from the task; `stream` says where it came from. */
  write(stream: "stdout" | "stderr" | "log", text: string): void;
}

/** What a command function receives. */
export interface TaskContext {
  /** Task params merged with `--param k=v`, plus task_name, workflow, workdir. */
  params: Record<string, Value>;
  /** Each dependency's output table, by task name (skipped ones are absent). */
  deps: Record<string, TaskOutput>;
  /** The run's values (from `--values`). */
  values: Record<string, Value>;
  /** Absolute working directory. */
  workdir: string;
  /** Aborted on timeout, cancellation or interruption: stop promptly. */
  signal: AbortSignal;
  log: TaskLog;
  /** The run id and task name, for artifacts and logs. */
  runId: string;
  taskName: string;
  /** 1 for the first attempt. */
  attempt: number;
  /** The run's extra environment (`RunOptions.env`), for the commands a function starts. */
  env?: Readonly<Record<string, string>> | undefined;
  /** When the task has a timeout: the Date.now() at which this attempt times out. */
  deadline?: number | undefined;
  /**
   * For a {@link DelegateExecutor}: says which agents this attempt runs on
   * (names, or HOST:PORT for agents dialled by address). The task's result
   * and final event carry the last attempt's.
   */
  placed?: ((agents: readonly string[]) => void) | undefined;
}

/** What a command function returns. */
export interface TaskOutcome {
  ok: boolean;
  message?: string | undefined;
  output?: TaskOutput | undefined;
  /**
   * When false, the failure is not retried (the script said so, or the
   * error can never succeed, such as a type error in the return value).
   */
  retryable?: boolean | undefined;
}

/** A task body implemented in code (for Lua: run in a worker by @sloth/dsl-lua). */
export type TaskFunction = (ctx: TaskContext) => Promise<TaskOutcome>;

/** A task's command: a shell string run with `bash -c`, or a function. */
export type TaskCommand =
  | { kind: "shell"; script: string }
  | { kind: "function"; fn: TaskFunction };

/**
 * A condition (`run_if`, `abort_if`): a shell string, true on exit 0, or a
 * function returning a boolean.
 */
export type Condition =
  | { kind: "shell"; script: string }
  | { kind: "function"; fn: (ctx: TaskContext) => Promise<boolean> };

/** A task lifecycle hook; it receives the context and, after the task, its outcome. */
export type TaskHook = (ctx: TaskContext, outcome?: TaskOutcome) => Promise<void>;

/** Retry backoff shapes. */
export type RetryBackoff = "exponential" | "fixed";

/** One task of a workflow. */
export interface TaskModel {
  name: string;
  description?: string | undefined;
  /** The TaskDefinitions group it came from, if any. */
  group?: string | undefined;
  command?: TaskCommand | undefined;
  dependsOn: string[];
  /** Extra attempts after the first (retries = N → up to N+1 attempts). */
  retries: number;
  retryBackoff: RetryBackoff;
  /** Base delay between attempts in ms (default 1000). */
  retryDelayMs?: number | undefined;
  /** Kill the attempt after this many ms; undefined means no timeout. */
  timeoutMs?: number | undefined;
  delegateTo?: Delegation | undefined;
  /** Working directory; relative paths are resolved against the workflow's base dir. */
  workdir?: string | undefined;
  params: Record<string, Value>;
  tags: string[];
  runIf?: Condition | undefined;
  abortIf?: Condition | undefined;
  hooks: {
    pre?: TaskHook | undefined;
    post?: TaskHook | undefined;
    onSuccess?: TaskHook | undefined;
    onFailure?: TaskHook | undefined;
    onTimeout?: TaskHook | undefined;
  };
  /** Paths (globs allowed) relative to the workdir, saved after success. */
  artifacts: string[];
  /** Artifact names `"task:path"` or paths produced by dependencies, copied in before the task. */
  consumes: string[];
  /** What delegation ships of the working directory (`.git` and `.slothignore` entries are always left out). */
  workspace?: { exclude: string[] } | undefined;
  /** Source position, for messages ("flow.sloth:12"). */
  source?: { file: string; line: number } | undefined;
}

/** Workflow-level settings (`:config({...})`). */
export interface WorkflowConfig {
  /** Whole-run timeout in ms. */
  timeoutMs?: number | undefined;
  /** Tasks running at once (default 4). */
  maxParallelTasks: number;
  /** Stop starting tasks and cancel running ones after the first failure (default false). */
  failFast: boolean;
  /** Seed 003 stack keys; a run that sets them needs stacks. */
  requireLock?: boolean | undefined;
  createSnapshot?: boolean | undefined;
  validateBefore?: boolean | undefined;
  detectDrift?: boolean | undefined;
  onFailure?: "rollback" | undefined;
  /** Other keys, kept for modules that read them. */
  extra: Record<string, Value>;
}

/**
 * Workflow lifecycle hooks. Each gets, last, a log for its output: it becomes
 * `workflow.log` events of the run.
 */
export interface WorkflowHooks {
  onStart?: ((log?: TaskLog) => Promise<void>) | undefined;
  onTaskStart?: ((taskName: string, log?: TaskLog) => Promise<void>) | undefined;
  onTaskComplete?:
    | ((
        taskName: string,
        success: boolean,
        output: TaskOutput | undefined,
        log?: TaskLog,
      ) => Promise<void>)
    | undefined;
  onComplete?:
    | ((success: boolean, results: Record<string, TaskOutput>, log?: TaskLog) => Promise<void>)
    | undefined;
}

/** A whole workflow, ready to run. */
export interface WorkflowModel {
  name: string;
  description?: string | undefined;
  version?: string | undefined;
  /** The file it came from, if any; its directory is the default workdir. */
  file?: string | undefined;
  /** Base directory for relative workdirs (default: the file's directory, else cwd). */
  baseDir: string;
  config: WorkflowConfig;
  /** Tasks in declaration order. */
  tasks: TaskModel[];
  hooks: WorkflowHooks;
}
