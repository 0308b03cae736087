import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { type ConnectRouter, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createAuthInterceptor, formatHostPort, SlothError, type TlsMaterial } from "@sloth/client";
import { MasterService } from "@sloth/proto";
import { AgentPool } from "./agent-pool.js";
import { type AgentEntry, AgentRegistry, type AgentState } from "./registry.js";
import { createMasterService, probe, remoteAddressKey, type ServiceDeps } from "./service.js";
import { VERSION } from "./version.js";

/** A pino-compatible logger; the master never prints on its own. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

/** Options of {@link createMaster}. Durations are milliseconds. */
export interface MasterOptions {
  /** Path of the registry database (`<data dir>/master/registry.db`). */
  registryPath: string;
  /** The cluster token every caller and agent must present. */
  token: string;
  /** Port to listen on (default 50053; 0 picks a free one). */
  port?: number;
  /** Address to bind (default 0.0.0.0). */
  bind?: string;
  /** Heartbeat interval told to agents (default 5000). */
  heartbeatIntervalMs?: number;
  /** Heartbeat jitter told to agents, in percent (default 20). */
  heartbeatJitterPercent?: number;
  /** Agents are inactive after ttl + grace without a heartbeat (defaults 15000 + 10000). */
  agentTtlMs?: number;
  agentGraceMs?: number;
  /** How long in-flight runs may finish on stop before they are cancelled (default 30000). */
  shutdownTimeoutMs?: number;
  /** TLS material used to dial agents. */
  agentTls?: TlsMaterial;
  logger?: Logger;
}

/** A running (or ready to run) master. */
export interface Master {
  readonly registry: AgentRegistry;
  /** Registers the MasterService on a Connect router, for embedding. */
  routes(router: ConnectRouter): void;
  /** Listens on the configured port and address. */
  listen(): Promise<{ address: string; port: number }>;
  /** Runs in flight now. */
  runsInFlight(): number;
  /**
   * Stops gracefully: refuse new work, let runs finish up to the shutdown
   * timeout, cancel the rest, close the registry.
   */
  stop(): Promise<void>;
}

const silent: Logger = { info() {}, warn() {}, error() {} };

/** Creates a master. Nothing listens until {@link Master.listen}. */
export function createMaster(options: MasterOptions): Master {
  const log = options.logger ?? silent;
  if (!options.token)
    throw new SlothError("SLOTH_TOKEN_MISSING", "cannot start master: the cluster token is empty");
  const registry = new AgentRegistry(options.registryPath, {
    ttlMs: options.agentTtlMs ?? 15_000,
    graceMs: options.agentGraceMs ?? 10_000,
  });
  const pool = new AgentPool(options.token, options.agentTls);
  const shutdown = new AbortController();
  const cancel = new AbortController();
  const deps: ServiceDeps = {
    registry,
    pool,
    version: VERSION,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 5000,
    heartbeatJitterPercent: options.heartbeatJitterPercent ?? 20,
    shutdownSignal: shutdown.signal,
    cancelSignal: cancel.signal,
    runs: { inFlight: 0 },
    probeTimeoutMs: 3000,
  };
  registry.on("registered", (a: AgentEntry) =>
    log.info(
      { agent: a.name, address: a.address, status: a.status, reason: a.statusReason || undefined },
      "agent registered",
    ),
  );
  registry.on("status", (a: AgentEntry, s: AgentState) =>
    log.info(
      { agent: a.name, status: s, reason: a.statusReason || undefined },
      "agent status changed",
    ),
  );
  registry.on("removed", (a: AgentEntry) => log.info({ agent: a.name }, "agent removed"));
  registry.on("status", (a: AgentEntry, s: AgentState) => {
    if (s === "inactive") pool.drop(a.address);
  });

  const service = createMasterService(deps);
  const routes = (router: ConnectRouter) => {
    router.service(MasterService, service);
  };
  const auth = createAuthInterceptor({ token: options.token, publicMethods: ["Health"] });

  let server: http2.Http2Server | undefined;
  const sessions = new Set<http2.ServerHttp2Session>();
  let reprobe: NodeJS.Timeout | undefined;
  registry.start();
  // Unreachable agents that keep heartbeating are probed again, so a fixed
  // network path brings them back without a restart.
  reprobe = setInterval(() => {
    for (const a of registry.list()) {
      if (a.status !== "unreachable") continue;
      void probe(deps, a.name, a.address).then((reason) => {
        if (!reason && registry.get(a.name)?.status === "unreachable")
          registry.setStatus(a.name, "active", "");
      });
    }
  }, 15_000);
  reprobe.unref();

  return {
    registry,
    routes,
    runsInFlight: () => deps.runs.inFlight,
    async listen() {
      const port = options.port ?? 50053;
      const bind = options.bind ?? "0.0.0.0";
      const handler = connectNodeAdapter({
        routes,
        interceptors: [auth],
        contextValues: (req) =>
          createContextValues().set(remoteAddressKey, req.socket?.remoteAddress),
      });
      const srv = http2.createServer({}, handler);
      srv.on("session", (s) => {
        sessions.add(s);
        s.once("close", () => sessions.delete(s));
      });
      await new Promise<void>((resolve, reject) => {
        srv.once("error", (e: NodeJS.ErrnoException) => {
          if (e.code === "EADDRINUSE") {
            reject(
              new SlothError("SLOTH_PORT_IN_USE", `port ${port} is already in use on ${bind}`, {
                hint: "stop the other process or choose another port with --port",
                cause: e,
              }),
            );
          } else if (e.code === "EADDRNOTAVAIL") {
            reject(
              new SlothError(
                "SLOTH_INVALID_ADDRESS",
                `cannot bind ${bind}: no such local address`,
                {
                  hint: "choose an address of this machine with --bind",
                  cause: e,
                },
              ),
            );
          } else reject(e);
        });
        srv.listen(port, bind, () => resolve());
      });
      server = srv;
      const actual = (srv.address() as AddressInfo).port;
      log.info({ bind, port: actual }, "master listening");
      return { address: formatHostPort(bind, actual), port: actual };
    },
    async stop() {
      if (shutdown.signal.aborted) return;
      shutdown.abort();
      clearInterval(reprobe);
      reprobe = undefined;
      server?.close();
      const deadline = Date.now() + (options.shutdownTimeoutMs ?? 30_000);
      while (deps.runs.inFlight > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      if (deps.runs.inFlight > 0) {
        log.warn({ runs: deps.runs.inFlight }, "cancelling runs still in flight");
        cancel.abort();
        const hard = Date.now() + 5000;
        while (deps.runs.inFlight > 0 && Date.now() < hard)
          await new Promise((r) => setTimeout(r, 20));
      }
      for (const s of sessions) s.close();
      await new Promise((r) => setTimeout(r, 10));
      for (const s of sessions) s.destroy();
      pool.closeAll();
      registry.close();
      log.info({}, "master stopped");
    },
  };
}
