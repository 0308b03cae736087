import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type Agent,
  AgentSchema,
  AgentStatus,
  type SystemFacts,
  SystemFactsSchema,
} from "@sloth/proto";
import type { AgentEntry, AgentState } from "./registry.js";

/** Registry status for a wire status (undefined for "unspecified"). */
export function stateFromStatus(s: AgentStatus): AgentState | undefined {
  return (Object.keys(STATUS) as AgentState[]).find((k) => STATUS[k] === s);
}

const STATUS: Record<AgentState, AgentStatus> = {
  active: AgentStatus.ACTIVE,
  inactive: AgentStatus.INACTIVE,
  unreachable: AgentStatus.UNREACHABLE,
};

/** Converts a registry entry to its wire form (never with the secret). */
export function toAgentMessage(a: AgentEntry): Agent {
  return create(AgentSchema, {
    name: a.name,
    address: a.address,
    status: STATUS[a.status],
    statusReason: a.statusReason,
    version: a.version,
    labels: a.labels,
    facts: factsToMessage(a.facts),
    lastSeen: timestampFromMs(a.lastSeen),
    registeredAt: timestampFromMs(a.registeredAt),
    tls: a.tls,
    runningCommands: a.runningCommands,
  });
}

/** Flattens system facts for storage. */
export function factsFromMessage(f: SystemFacts | undefined): Record<string, string | number> {
  if (!f) return {};
  return {
    hostname: f.hostname,
    os: f.os,
    arch: f.arch,
    kernel: f.kernel,
    cpus: f.cpus,
    memoryBytes: Number(f.memoryBytes),
    nodeVersion: f.nodeVersion,
  };
}

function factsToMessage(f: Record<string, string | number>): SystemFacts {
  const s = (k: string) => (typeof f[k] === "string" ? (f[k] as string) : "");
  const n = (k: string) => (typeof f[k] === "number" ? (f[k] as number) : 0);
  return create(SystemFactsSchema, {
    hostname: s("hostname"),
    os: s("os"),
    arch: s("arch"),
    kernel: s("kernel"),
    cpus: n("cpus"),
    memoryBytes: BigInt(n("memoryBytes")),
    nodeVersion: s("nodeVersion"),
  });
}
