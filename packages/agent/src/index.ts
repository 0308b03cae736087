/**
 * @sloth/agent: the Sloth Runner agent runtime. Serves AgentService (run
 * commands with streamed output, metrics, health, shutdown), registers with a
 * master and keeps heartbeating through master restarts.
 */
export {
  type Agent,
  type AgentAddress,
  type AgentOptions,
  type AgentTls,
  createAgent,
  type StopOptions,
} from "./agent.js";
export { type BackoffOptions, backoffDelay } from "./backoff.js";
export { describeAgentEvent } from "./describe.js";
export { AgentNameHeldError, PortInUseError } from "./errors.js";
export type { AgentEvent, AgentStatus } from "./events.js";
export {
  type AgentRuntimeOptions,
  type AgentStartFlags,
  agentOptionsFromFlags,
  agentStartFlags,
  agentTokenWarning,
  startAgentFromFlags,
  stopOnSignals,
} from "./flags.js";
export { type AgentIdentity, loadOrCreateIdentity } from "./identity.js";
export type { AgentLogger, LogFn } from "./logger.js";
export { parseLabels, validateAgentName } from "./options.js";
export type { HeartbeatOptions } from "./registration.js";
export {
  type CommandEvent,
  type CommandRequest,
  type CommandResult,
  type RunCommandOptions,
  runCommand,
} from "./run-command.js";
export { AGENT_VERSION } from "./version.js";
