/**
 * @sloth/delegation: runs workflow tasks that have `delegate_to` on agents.
 * It resolves targets (names and labels through the master, addresses
 * directly), ships the workflow and the task's working directory, streams
 * the task's log into the run, and returns its outcome and changes.
 */
export { directChannel, masterChannel, type TaskChannel } from "./channel.js";
export { createDelegate, type Delegate, type DelegateOptions } from "./delegate.js";
export { type ShipperOptions, workspaceShipper } from "./shipper.js";
export { collectSources, type SourceFile } from "./sources.js";
export type { WorkspaceShipper } from "./workspace.js";
