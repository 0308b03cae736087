import type { AgentEvent } from "./events.js";

/** A short duration for people: 850ms, 2.50s, 12.0s, 3m05s. */
function briefly(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  return `${m}m${String(s).padStart(2, "0")}s`;
}

/**
 * The lines a person reads for an agent event, as `sloth-runner agent start`
 * and `sloth-agentd --log-format text` print them on stderr; none for events
 * that say nothing new. Lines that warn start with "warning: " (a caller may
 * colour them). Never contains the token.
 */
export function describeAgentEvent(name: string, e: AgentEvent): string[] {
  switch (e.type) {
    case "listening":
      return [`Agent '${name}' listening on ${e.address}`];
    case "registered": {
      const line = `Agent '${name}' ${e.again ? "registered again" : "registered"} with master at ${e.master}`;
      const u = e.unreachable;
      if (!u) return [line];
      return [
        line,
        `warning: the master cannot reach this agent at ${u.address}: ${u.reason}; ${u.hint}`,
      ];
    }
    case "registration-failed": {
      // Most errors name the master already ("cannot reach master at ...").
      const at = e.error.message.includes(e.master) ? "" : ` with master at ${e.master}`;
      return [
        `warning: cannot register${at}: ${e.error.describe()} (retrying in ${briefly(e.retryInMs)})`,
      ];
    }
    case "heartbeat-failed": {
      const at = e.error.message.includes(e.master) ? "" : ` to master at ${e.master}`;
      return [
        `warning: heartbeat${at} failed: ${e.error.describe()} (retrying in ${briefly(e.retryInMs)})`,
      ];
    }
    case "reconnected":
      return [`Agent '${name}' reconnected to master at ${e.master}`];
    case "orphans-killed":
      return [
        `warning: killed ${e.pids.length} process(es) left running by an earlier run of agent '${name}' (pids ${e.pids.join(", ")})`,
      ];
    case "forgotten":
      return [`Master at ${e.master} no longer knows agent '${name}': registering again`];
    case "stopping":
      return [`Agent '${name}' stopping`];
    case "stopped":
      // A fatal error is reported once, by whoever awaits the agent.
      return [`Agent '${name}' stopped`];
  }
  return [];
}
