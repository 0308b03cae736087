/**
 * @sloth/workflow: runs a workflow model as a parallel DAG, with retries,
 * timeouts, hooks, artifacts and one stream of events. Independent of Lua.
 */

export { describeTarget } from "./attempt.js";
export { findCycle, planLevels, selectTasks, validateWorkflow } from "./dag.js";
export { defineTask, defineWorkflow, type TaskInput, type WorkflowInput } from "./define.js";
export {
  isWorkflowError,
  WorkflowError,
  type WorkflowErrorCode,
  type WorkflowErrorOptions,
} from "./errors.js";
export { EventChannel, type RunEvent, type RunEventType, type RunStatus } from "./events.js";
export { findRunLeftovers, stopRunLeftovers } from "./leftovers.js";
export type {
  Condition,
  DelegateTarget,
  Delegation,
  DurationInput,
  RetryBackoff,
  TaskCommand,
  TaskContext,
  TaskFunction,
  TaskHook,
  TaskLog,
  TaskModel,
  TaskOutcome,
  TaskOutput,
  Value,
  WorkflowConfig,
  WorkflowHooks,
  WorkflowModel,
} from "./model.js";
export { type PlannedTask, planRun, type RunPlan } from "./plan.js";
export { listPids, processEnv, processStat } from "./proc.js";
export { DEFAULT_RETRY_DELAY_MS, MAX_RETRY_DELAY_MS, retryDelay } from "./retry.js";
export { runWorkflow } from "./runner.js";
export type {
  DelegateExecutor,
  Logger,
  RunHandle,
  RunOptions,
  RunResult,
  TaskResult,
  TaskStatus,
} from "./types.js";
