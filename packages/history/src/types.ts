import type { TaskOutput, Value } from "@sloth/workflow";

/** How a recorded run stands. `interrupted` includes runs whose process died. */
export type HistoryRunStatus = "running" | "succeeded" | "failed" | "aborted" | "interrupted";

/**
 * How a recorded task stands: the runner's end states, plus `pending` (never
 * started), `running`, `retrying`, and `interrupted` (its runner died).
 */
export type HistoryTaskStatus =
  | "pending"
  | "running"
  | "retrying"
  | "succeeded"
  | "failed"
  | "skipped"
  | "cancelled"
  | "interrupted";

/** One recorded run, without its tasks. */
export interface RunRecord {
  id: string;
  workflow: string;
  /** Absolute path of the workflow file, when there was one. */
  file: string | undefined;
  /** sha256 (hex) of the file when the run started. */
  fileHash: string | undefined;
  values: Record<string, Value>;
  params: Record<string, Value>;
  status: HistoryRunStatus;
  message: string | undefined;
  startedAt: Date;
  endedAt: Date | undefined;
  durationMs: number | undefined;
  /** The runner's process id and host. */
  pid: number;
  host: string;
  /** The run this one resumed, if any. */
  resumedFrom: string | undefined;
  /** The other files the workflow read when it loaded, with their hashes. */
  sources: SourceFile[];
  /** The stack the run deployed, if any (a resume deploys it again). */
  stack: string | undefined;
}

/** A file a workflow read besides its own (`require`, `dofile`), as recorded. */
export interface SourceFile {
  /** Relative to the workflow file's directory when inside it, else absolute. */
  path: string;
  /** sha256 (hex) of its bytes when the run started. */
  hash: string;
}

/** One task of a recorded run. */
export interface TaskRecord {
  name: string;
  status: HistoryTaskStatus;
  /** Attempts made (0 when it never ran, or when its output was reused). */
  attempts: number;
  startedAt: Date | undefined;
  endedAt: Date | undefined;
  durationMs: number | undefined;
  message: string | undefined;
  output: TaskOutput | undefined;
  /** True when the output was taken from the resumed run instead of running. */
  reused: boolean;
  /** The agents its last attempt ran on; absent when it ran here. */
  agents?: string[] | undefined;
  /** Bytes of log the task wrote; the stored log may keep only its tail. */
  logSize: number;
}

/** A run with its tasks in declaration order. */
export interface RunDetail extends RunRecord {
  tasks: TaskRecord[];
}

/** One task's stored log. */
export interface TaskLogRecord {
  /** The task; for the output of the workflow's own hooks, {@link HOOKS_LOG}. */
  task: string;
  /** True for the output of the workflow's hooks rather than of a task. */
  hooks?: boolean;
  /** The last bytes of the log (all of it unless `truncated`). */
  text: string;
  /** Bytes the task wrote in all. */
  size: number;
  truncated: boolean;
}

/** Filters of {@link HistoryStore.listRuns}. */
export interface ListRunsFilter {
  workflow?: string | undefined;
  status?: HistoryRunStatus | undefined;
  /** At most this many, newest first (default 50). */
  limit?: number | undefined;
}

/** What is known about a run when it starts. */
export interface RunStart {
  id: string;
  workflow: string;
  /** The task names, in declaration order. */
  tasks: readonly string[];
  file?: string | undefined;
  fileHash?: string | undefined;
  values?: Record<string, Value> | undefined;
  params?: Record<string, Value> | undefined;
  resumedFrom?: string | undefined;
  /** The other files the workflow read when it loaded (see {@link hashSources}). */
  sources?: readonly SourceFile[] | undefined;
  /** Tasks whose outputs come from the resumed run (recorded as `reused`). */
  reused?: readonly string[] | undefined;
  /** The stack the run deploys. */
  stack?: string | undefined;
  /** Start time (default now). */
  startedAt?: Date | undefined;
  /** The runner's pid (default this process). */
  pid?: number | undefined;
}
