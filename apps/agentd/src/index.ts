/**
 * @sloth/agentd: the `sloth-agentd` node daemon. The agent itself lives in
 * @sloth/agent; this package parses flags, logs with pino and handles signals.
 */
export { main, VERSION } from "./main.js";
