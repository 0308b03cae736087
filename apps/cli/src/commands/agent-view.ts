import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type Agent, AgentStatus, type Metrics } from "@sloth/proto";
import { formatDuration, type Painter } from "../output.js";

const STATUS_NAMES: Record<number, string> = {
  [AgentStatus.ACTIVE]: "active",
  [AgentStatus.INACTIVE]: "inactive",
  [AgentStatus.UNREACHABLE]: "unreachable",
};

/** The status word of an agent. */
export function statusName(s: AgentStatus): string {
  return STATUS_NAMES[s] ?? "unknown";
}

/** An agent as `--json` prints it. */
export function agentJson(a: Agent) {
  return {
    name: a.name,
    address: a.address,
    status: statusName(a.status),
    statusReason: a.statusReason || null,
    version: a.version,
    lastSeen: a.lastSeen ? new Date(timestampMs(a.lastSeen)).toISOString() : null,
    registeredAt: a.registeredAt ? new Date(timestampMs(a.registeredAt)).toISOString() : null,
    labels: { ...a.labels },
    facts: a.facts
      ? {
          hostname: a.facts.hostname,
          os: a.facts.os,
          arch: a.facts.arch,
          kernel: a.facts.kernel,
          cpus: a.facts.cpus,
          memoryBytes: Number(a.facts.memoryBytes),
          nodeVersion: a.facts.nodeVersion,
        }
      : null,
  };
}

/** A coloured status word. */
export function paintStatus(c: Painter, s: AgentStatus): string {
  const name = statusName(s);
  if (s === AgentStatus.ACTIVE) return c.green(name);
  if (s === AgentStatus.UNREACHABLE) return c.yellow(name);
  return c.red(name);
}

/** "3s ago" from a timestamp. */
export function ago(a: Agent, now = Date.now()): string {
  if (!a.lastSeen) return "never";
  return `${formatDuration(Math.max(0, now - timestampMs(a.lastSeen)))} ago`;
}

/** Human-readable byte counts. */
export function bytes(n: bigint | number): string {
  let v = Number(n);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Metrics as `--json` prints them. */
export function metricsJson(name: string, m: Metrics) {
  return {
    agent: name,
    cpuPercent: m.cpuPercent,
    cpuCount: m.cpuCount,
    memoryTotalBytes: Number(m.memoryTotalBytes),
    memoryUsedBytes: Number(m.memoryUsedBytes),
    diskPath: m.diskPath,
    diskTotalBytes: Number(m.diskTotalBytes),
    diskUsedBytes: Number(m.diskUsedBytes),
    load: [m.load1, m.load5, m.load15],
    uptimeSeconds: Number(m.uptimeSeconds),
    processUptimeSeconds: Number(m.processUptimeSeconds),
    processRssBytes: Number(m.processRssBytes),
    runningCommands: m.runningCommands,
    version: m.version,
    collectedAt: m.collectedAt ? new Date(timestampMs(m.collectedAt)).toISOString() : null,
  };
}
