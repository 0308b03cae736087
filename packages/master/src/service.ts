import {
  Code,
  ConnectError,
  createContextKey,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import {
  formatHostPort,
  isWildcardHost,
  parseHostPort,
  SlothError,
  toConnectError,
} from "@sloth/client";
import type { MasterService } from "@sloth/proto";
import type { AgentPool } from "./agent-pool.js";
import { factsFromMessage, stateFromStatus, toAgentMessage } from "./convert.js";
import type { AgentEntry, AgentRegistry, AgentState } from "./registry.js";
import { matchAgents } from "./selector.js";
import { callerEnded, emptyAgentName, taskRelay } from "./task-relay.js";

/** The caller's IP address, set per request by the server. */
export const remoteAddressKey = createContextKey<string | undefined>(undefined, {
  description: "remote address",
});

/** What the service needs from the master around it. */
export interface ServiceDeps {
  registry: AgentRegistry;
  pool: AgentPool;
  version: string;
  heartbeatIntervalMs: number;
  heartbeatJitterPercent: number;
  /** Aborted when the master stops accepting work. */
  shutdownSignal: AbortSignal;
  /** Aborted when in-flight runs must be cancelled. */
  cancelSignal: AbortSignal;
  runs: { inFlight: number };
  probeTimeoutMs: number;
  /** Refuse agents that do not serve TLS. */
  requireAgentTls: boolean;
}

function notFound(name: string): SlothError {
  if (name === "") return emptyAgentName();
  return new SlothError("SLOTH_AGENT_NOT_FOUND", `agent '${name}' not found`, {
    hint: "run `sloth-runner agent list` to see the registered agents",
    details: { name },
  });
}

/** Normalises an IPv4-mapped IPv6 address (::ffff:10.0.0.1 → 10.0.0.1). */
function plainIp(ip: string | undefined): string {
  if (!ip) return "127.0.0.1";
  return ip.startsWith("::ffff:") ? ip.slice(7) : ip;
}

/**
 * The address the master dials: the report address, else the bind address
 * and port when it is not a wildcard, else the caller's IP and the port.
 */
export function dialAddress(
  report: string,
  bind: string,
  port: number,
  remoteIp: string | undefined,
): string {
  if (report) return report;
  if (bind && !isWildcardHost(bind)) return formatHostPort(bind, port);
  return formatHostPort(plainIp(remoteIp), port);
}

/** Calls the agent's Health; returns the failure reason, or "" when reachable. */
export async function probe(
  deps: ServiceDeps,
  name: string,
  address: string,
  tls: boolean,
): Promise<string> {
  try {
    const res = await deps.pool.client(address, tls).health({}, { timeoutMs: deps.probeTimeoutMs });
    if (res.name && res.name !== name) return `${address} answers as agent '${res.name}'`;
    return "";
  } catch (e) {
    deps.pool.drop(address);
    const msg =
      e instanceof ConnectError ? e.rawMessage : e instanceof Error ? e.message : String(e);
    return `cannot reach ${address}: ${msg}`;
  }
}

function guard<T>(deps: ServiceDeps, fn: () => Promise<T>): Promise<T> {
  if (deps.shutdownSignal.aborted) {
    return Promise.reject(new ConnectError("master is shutting down", Code.Unavailable));
  }
  return fn().catch((e: unknown) => {
    throw toConnectError(e);
  });
}

/** What a heartbeat carries (HeartbeatRequest's fields). */
export interface HeartbeatInput {
  name: string;
  identitySecret: Uint8Array;
  runningCommands: number;
  stopping: boolean;
}

/**
 * Records a heartbeat and answers the interval to keep; NOT_FOUND when the
 * agent is unknown or the secret does not match (the agent registers again).
 * Shared by the Connect handler and the hand-served path (fast-heartbeat.ts).
 */
export function answerHeartbeat(
  deps: ServiceDeps,
  req: HeartbeatInput,
): { heartbeatIntervalMs: bigint } {
  const { registry } = deps;
  const a = registry.heartbeat(req.name, req.identitySecret, req.runningCommands);
  if (!a) throw new ConnectError(`agent '${req.name}' is not registered`, Code.NotFound);
  if (req.stopping) registry.setStatus(a.name, "inactive", "the agent stopped");
  const interval = registry.heartbeatInterval(deps.heartbeatIntervalMs);
  registry.stretchTtl(interval);
  return { heartbeatIntervalMs: BigInt(interval) };
}

function heartbeatGuard<T>(fn: () => Promise<T>): Promise<T> {
  return fn().catch((e: unknown) => {
    throw toConnectError(e);
  });
}

export function mustGet(deps: ServiceDeps, name: string): AgentEntry {
  const a = deps.registry.get(name);
  if (!a) throw notFound(name);
  return a;
}

export function agentLink(a: AgentEntry, e: unknown): SlothError {
  const msg = e instanceof ConnectError ? e.rawMessage : String(e);
  return new SlothError(
    "SLOTH_AGENT_UNAVAILABLE",
    `cannot reach agent '${a.name}' at ${a.address}: ${msg}`,
    {
      hint: `check that the agent runs and that the master can reach ${a.address} (see --report-address)`,
      cause: e,
    },
  );
}

export function requireUsable(a: AgentEntry): void {
  if (a.status === "inactive") {
    const secs = Math.round((Date.now() - a.lastSeen) / 1000);
    throw new SlothError(
      "SLOTH_AGENT_UNAVAILABLE",
      `agent '${a.name}' is inactive (last heartbeat ${secs}s ago)`,
      {
        hint: "start the agent again, or run `sloth-runner agent list` to pick an active one",
      },
    );
  }
}

/** The MasterService implementation. */
export function createMasterService(deps: ServiceDeps): ServiceImpl<typeof MasterService> {
  const { registry } = deps;
  return {
    registerAgent: (req, ctx) =>
      guard(deps, async () => {
        if (!req.name)
          throw new SlothError("SLOTH_INVALID_ARGUMENT", "cannot register agent: name is empty");
        if (req.identitySecret.length < 16) {
          throw new SlothError(
            "SLOTH_INVALID_ARGUMENT",
            "cannot register agent: identity secret is too short",
          );
        }
        if (req.reportAddress) parseHostPort(req.reportAddress);
        else if (!Number.isInteger(req.port) || req.port < 1 || req.port > 65535)
          throw new SlothError(
            "SLOTH_INVALID_ARGUMENT",
            `cannot register agent '${req.name}': port ${req.port} is outside 1-65535`,
            { hint: "register the port the agent listens on, or a report address" },
          );
        if (deps.requireAgentTls && !req.servesTls) {
          throw new SlothError(
            "SLOTH_TLS_REQUIRED",
            `master refuses agent '${req.name}': the agent does not serve TLS`,
            {
              hint: "start the agent with --tls-cert, --tls-key and --tls-ca",
            },
          );
        }
        const address = dialAddress(
          req.reportAddress,
          req.bindAddress,
          req.port,
          ctx.values.get(remoteAddressKey),
        );
        const existing = registry.get(req.name);
        const input = {
          name: req.name,
          address,
          reportAddress: req.reportAddress,
          bindAddress: req.bindAddress,
          port: req.port,
          version: req.version,
          labels: { ...req.labels },
          facts: factsFromMessage(req.facts),
          secret: req.identitySecret,
          tls: req.servesTls,
        };
        // Refuse a hijack before probing anything.
        registry.assertIdentity(req.name, req.identitySecret);
        if (existing && existing.address !== address) deps.pool.drop(existing.address);
        const reason = await probe(deps, req.name, address, req.servesTls);
        const status: AgentState = reason ? "unreachable" : "active";
        const entry = registry.register(input, status, reason);
        const interval = registry.heartbeatInterval(deps.heartbeatIntervalMs);
        registry.stretchTtl(interval);
        return {
          agent: toAgentMessage(entry),
          heartbeatIntervalMs: BigInt(interval),
          heartbeatJitterPercent: deps.heartbeatJitterPercent,
        };
      }),
    // Heartbeats are answered while the master drains, so agents running
    // the last relayed commands are not marked inactive.
    heartbeat: (req) => heartbeatGuard(async () => answerHeartbeat(deps, req)),
    listAgents: (req) =>
      guard(deps, async () => {
        const match = matchAgents({
          labels: req.labels,
          nameGlob: req.nameGlob,
          status: stateFromStatus(req.status),
        });
        return { agents: registry.list().filter(match).map(toAgentMessage) };
      }),
    getAgent: (req) =>
      guard(deps, async () => ({ agent: toAgentMessage(mustGet(deps, req.name)) })),
    deleteAgent: (req) =>
      guard(deps, async () => {
        const a = registry.delete(req.name);
        if (!a) throw notFound(req.name);
        deps.pool.drop(a.address);
        return {};
      }),
    stopAgent: (req) =>
      guard(deps, async () => {
        const a = mustGet(deps, req.name);
        requireUsable(a);
        try {
          await deps.pool.client(a.address, a.tls).shutdown({}, { timeoutMs: 10_000 });
        } catch (e) {
          throw agentLink(a, e);
        }
        return {};
      }),
    getAgentMetrics: (req) =>
      guard(deps, async () => {
        const a = mustGet(deps, req.name);
        requireUsable(a);
        try {
          const res = await deps.pool
            .client(a.address, a.tls)
            .getMetrics({}, { timeoutMs: 10_000 });
          return { metrics: res.metrics };
        } catch (e) {
          throw agentLink(a, e);
        }
      }),
    health: async () => ({
      version: deps.version,
      agentsActive: registry.counts().active,
      runsInFlight: deps.runs.inFlight,
    }),
    runOnAgent: (req, ctx) => relay(deps, req.agentName, req.spec, ctx),
    ...taskRelay(deps),
  };
}

async function* relay(
  deps: ServiceDeps,
  name: string,
  spec: Parameters<ServiceImpl<typeof MasterService>["runOnAgent"]>[0]["spec"],
  ctx: HandlerContext,
) {
  if (deps.shutdownSignal.aborted)
    throw new ConnectError("master is shutting down", Code.Unavailable);
  let a: AgentEntry;
  try {
    a = mustGet(deps, name);
    requireUsable(a);
    if (!spec?.command)
      throw new SlothError("SLOTH_INVALID_ARGUMENT", "cannot run: the command is empty");
  } catch (e) {
    throw toConnectError(e);
  }
  const signal = AbortSignal.any([ctx.signal, deps.cancelSignal]);
  deps.runs.inFlight++;
  let sawExit = false;
  try {
    const stream = deps.pool.client(a.address, a.tls).runCommand({ spec }, { signal });
    for await (const res of stream) {
      if (res.event?.event.case === "exit") sawExit = true;
      yield { event: res.event };
    }
    if (!sawExit) throw agentLink(a, new Error("stream ended without an exit status"));
  } catch (e) {
    if (ctx.signal.aborted) throw callerEnded(ctx.signal);
    if (deps.cancelSignal.aborted) {
      throw new ConnectError("cancelled: the master is shutting down", Code.Unavailable);
    }
    if (e instanceof ConnectError && e.code !== Code.Unavailable && e.code !== Code.Unknown)
      throw e;
    throw toConnectError(agentLink(a, e));
  } finally {
    deps.runs.inFlight--;
  }
}
