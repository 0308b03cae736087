/**
 * @sloth/stack: deployment stacks. Each stack keeps a current state (what
 * its last workflow run left), numbered snapshots to compare and restore, a
 * lock so two deployments never overlap, the resources it should hold with
 * the commands that check and fix them (drift detection), the stacks it
 * depends on, and an audit trail of events, in SQLite (`stacks.db`).
 */
export { dependencyOrder, findCycle, transitive } from "./deps.js";
export {
  type DriftOptions,
  detectDrift,
  fixDrift,
  lastDrift,
  validateStack,
} from "./drift.js";
export {
  isStackError,
  StackError,
  type StackErrorCode,
  type StackErrorOptions,
} from "./errors.js";
export { graphToDot, graphToMermaid, type StackGraph, stackGraph } from "./graph.js";
export { diffJson } from "./json-diff.js";
export {
  checkStackName,
  defaultActor,
  type LockOptions,
  MAX_DEPTH,
  MAX_TTL_MS,
  openStackStore,
  type Source,
  type StackExport,
  type StackStore,
  type StackStoreOptions,
} from "./store.js";
export type {
  Difference,
  DriftFinding,
  DriftReport,
  Json,
  JsonObject,
  ResourceSpec,
  SnapshotContent,
  Stack,
  StackEvent,
  StackLock,
  StackResource,
  StackStatus,
  StackVersion,
  ValidationCheck,
} from "./types.js";
