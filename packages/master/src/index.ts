/**
 * @sloth/master: the Sloth Runner master. It keeps the persisted agent
 * registry, watches agent liveness, and relays commands to agents. Run it
 * with `createMaster(options).listen()`, or mount its routes into your own
 * Connect server with `master.routes`.
 */
export {
  createMaster,
  type Logger,
  type Master,
  type MasterEvent,
  type MasterOptions,
  type ServerTls,
} from "./master.js";
export {
  type AgentEntry,
  AgentRegistry,
  type AgentState,
  type LivenessOptions,
  type RegistryEvents,
} from "./registry.js";
export { type AgentSelector, matchAgents } from "./selector.js";
export { dialAddress } from "./service.js";
export { VERSION } from "./version.js";
