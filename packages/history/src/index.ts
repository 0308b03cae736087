/**
 * @sloth/history: what ran, when, and how it ended. Records runs of
 * `@sloth/workflow` in SQLite (`history.db`) from the runner's events, in
 * one transaction per scheduler tick, and reads them back for the `runs`
 * commands and `run --resume`.
 */

export { pidAlive } from "@sloth/client/light";
export {
  HistoryError,
  type HistoryErrorCode,
  type HistoryErrorOptions,
  isHistoryError,
} from "./errors.js";
export { changedSources, hashFile, hashSources } from "./hash.js";
export type { RunRecorder } from "./recorder.js";
export { planResume, type ResumePlan } from "./resume.js";
export {
  DEFAULT_LOG_LIMIT,
  type HistoryOptions,
  type HistoryStore,
  HOOKS_LOG,
  openHistory,
} from "./store.js";
export type {
  HistoryRunStatus,
  HistoryTaskStatus,
  ListRunsFilter,
  RunDetail,
  RunRecord,
  RunStart,
  SourceFile,
  TaskLogRecord,
  TaskRecord,
} from "./types.js";
