import picomatch from "picomatch";
import type { AgentEntry, AgentState } from "./registry.js";

/** Which agents a request targets. */
export interface AgentSelector {
  /** All of these labels must match. */
  labels?: Record<string, string> | undefined;
  /** A glob on names, such as "web-*"; empty matches every name. */
  nameGlob?: string | undefined;
  status?: AgentState | undefined;
}

/** A predicate for agents matching `selector`. */
export function matchAgents(selector: AgentSelector): (a: AgentEntry) => boolean {
  const nameMatch = selector.nameGlob ? picomatch(selector.nameGlob, { dot: true }) : () => true;
  const labels = Object.entries(selector.labels ?? {});
  return (a) =>
    (selector.status === undefined || a.status === selector.status) &&
    nameMatch(a.name) &&
    labels.every(([k, v]) => a.labels[k] === v);
}
