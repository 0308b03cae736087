/** What a schedule runs: a workflow file and the options of its runs. */
export interface RunSpec {
  /** Absolute path of the workflow file. */
  file: string;
  /** Absolute path of the folder runs start in (default: the workflow file's). */
  cwd?: string | undefined;
  /** Values files (absolute paths), merged in order. */
  values?: string[] | undefined;
  /** Task parameters, KEY → VALUE. */
  params?: Record<string, string> | undefined;
  /** The workflow.define workflow to run. */
  workflow?: string | undefined;
  /** The TaskDefinitions group to run. */
  group?: string | undefined;
  /** Only these tasks and what they depend on. */
  tasks?: string[] | undefined;
  /** Deploy as this stack (`run STACK -f FILE`). */
  stack?: string | undefined;
  /** The environment whose secrets the run reads (`run --secrets-env`). */
  secretsEnv?: string | undefined;
}

/**
 * How a schedule's run ended. `stopped`: ended because its scheduler
 * stopped; `lost`: its scheduler died and its process is gone, end unknown.
 */
export type ScheduleRunStatus = "running" | "succeeded" | "failed" | "stopped" | "skipped" | "lost";

/** One firing of a schedule (or a run by hand, or a skipped slot). */
export interface ScheduleRun {
  id: number;
  schedule: string;
  trigger: "schedule" | "manual";
  /** The slot the run was for; undefined for runs by hand. */
  dueAt: Date | undefined;
  startedAt: Date;
  endedAt: Date | undefined;
  status: ScheduleRunStatus;
  exitCode: number | undefined;
  /** The workflow run's id in the run history, when known. */
  runId: string | undefined;
  message: string;
  /** The run's own process, when the launcher reported it. */
  childPid: number | undefined;
}

/** A schedule, with its next slot and its last run. */
export interface Schedule {
  name: string;
  cron: string;
  /** IANA time zone; undefined: the scheduler's local time. */
  timezone: string | undefined;
  spec: RunSpec;
  description: string;
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
  /** The next slot after now; undefined when disabled or when the expression has none. */
  nextRunAt: Date | undefined;
  lastRun: ScheduleRun | undefined;
  /** Set when the stored schedule cannot be read (it is not run); `delete` still works. */
  error?: string | undefined;
}

/** The scheduler loop holding a schedules file. */
export interface SchedulerHolder {
  pid: number;
  host: string;
  startedAt: Date;
}
