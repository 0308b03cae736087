/**
 * `@sloth/scheduler`: recurring workflow runs. Schedules (a cron expression,
 * a time zone, a workflow file and its run options) live in SQLite
 * (`schedules.db`); {@link runScheduler} runs them on time through a
 * launcher the caller gives (the CLI starts `sloth-runner run`), one loop per
 * file, never two runs of one schedule at once; each run is recorded.
 */
export { isSchedulerError, SchedulerError, type SchedulerErrorCode } from "./errors.js";
export {
  type Launcher,
  type LaunchResult,
  runScheduleNow,
  runScheduler,
  type SchedulerEvent,
  type SchedulerOptions,
} from "./loop.js";
export {
  checkScheduleName,
  nextRunOf,
  nextRunsOf,
  openScheduleStore,
  type RunEnd,
  type ScheduleChanges,
  type ScheduleInput,
  type ScheduleStore,
  type ScheduleStoreOptions,
} from "./store.js";
export type {
  RunSpec,
  Schedule,
  ScheduleRun,
  ScheduleRunStatus,
  SchedulerHolder,
} from "./types.js";
