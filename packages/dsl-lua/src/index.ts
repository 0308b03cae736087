/**
 * @sloth/dsl-lua: loads Sloth workflow files (`.sloth`/`.lua`, Lua 5.4 on
 * wasmoon) into the typed workflow model of @sloth/workflow. Every Lua
 * function of a workflow (commands, hooks, conditions) becomes a model
 * function that runs in a worker thread, so a script error or a runaway loop
 * fails only its task.
 *
 * ```ts
 * const { workflows, groups, notices } = await loadWorkflowFile("flow.sloth", { values });
 * ```
 */
export { parseDelegateTo } from "./convert/delegate.js";
export { parseDuration } from "./convert/duration.js";
export type { DslErrorCode, DslErrorOptions, SourceLocation } from "./errors.js";
export { DslError, isSlothError } from "./errors.js";
export { loadWorkflowFile, validate } from "./load.js";
export { shutdownLuaWorkers } from "./pool.js";
export type {
  LoadedWorkflows,
  LoadOptions,
  Logger,
  LuaModuleDefinition,
  LuaModuleHost,
  LuaModuleSpec,
  StateTarget,
  ValidationProblem,
  ValidationResult,
} from "./types.js";
