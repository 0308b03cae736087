import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { type ConnectRouter, createContextValues, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  answerMetrics,
  closeIfSilent,
  createAuthInterceptor,
  createStandardServices,
  formatHostPort,
  MAX_STREAMS_PER_SESSION,
  requestAllowed,
  SlothError,
  STANDARD_PUBLIC_METHODS,
  type TlsMaterial,
  tokenTieredHandler,
  withSpecGrpcMessages,
} from "@sloth/client";
import { MasterService, StateService } from "@sloth/proto";
import { openStateBackend, type StateBackend } from "@sloth/state";
import { AgentPool } from "./agent-pool.js";
import { createFastHeartbeat } from "./fast-heartbeat.js";
import { createFastRelay } from "./fast-relay.js";
import { createDualServer, type DualServer } from "./listener.js";
import { createMasterMetrics } from "./metrics.js";
import { type AgentEntry, AgentRegistry, type AgentState } from "./registry.js";
import { createMasterService, probe, remoteAddressKey, type ServiceDeps } from "./service.js";
import { createStateService } from "./state-service.js";
import { VERSION } from "./version.js";

/** A pino-compatible logger; the master never prints on its own. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

/** TLS of the master's own listener. */
export interface ServerTls {
  cert: string | Buffer;
  key: string | Buffer;
  /** When set, clients must present a certificate signed by this CA (mTLS). */
  ca?: string | Buffer | undefined;
}

/** Options of {@link createMaster}. Durations are milliseconds. */
export interface MasterOptions {
  /** Path of the registry database (`<data dir>/master/registry.db`). */
  registryPath: string;
  /**
   * Path of the state store served by the StateService (default: `state.db`
   * beside the registry, `<data dir>/master/state.db`). Opened on first use.
   */
  statePath?: string | undefined;
  /** The cluster token every caller and agent must present. */
  token: string;
  /** Port to listen on (default 50053; 0 picks a free one). */
  port?: number;
  /** Address to bind (default 0.0.0.0). */
  bind?: string;
  /** Serve TLS (HTTP/2 and HTTP/1.1 by ALPN) instead of cleartext. */
  tls?: ServerTls | undefined;
  /** Heartbeat interval told to agents (default 5000). */
  heartbeatIntervalMs?: number;
  /** Heartbeat jitter told to agents, in percent (default 20). */
  heartbeatJitterPercent?: number;
  /** Agents are inactive after ttl + grace without a heartbeat (defaults 15000 + 10000). */
  agentTtlMs?: number;
  agentGraceMs?: number;
  /** How long in-flight runs may finish on stop before they are cancelled (default 30000). */
  shutdownTimeoutMs?: number;
  /** TLS material used to dial agents (the CA that signed them, and our client certificate). */
  agentTls?: TlsMaterial | undefined;
  /** Refuse agents that do not serve TLS (default: true when `tls` is set). */
  requireAgentTls?: boolean | undefined;
  logger?: Logger;
}

/** A registry change, as {@link Master.events} yields it. */
export type MasterEvent =
  | { type: "registered"; agent: AgentEntry }
  | { type: "status"; agent: AgentEntry; status: AgentState }
  | { type: "removed"; agent: AgentEntry };

/** A running (or ready to run) master. */
export interface Master {
  readonly registry: AgentRegistry;
  /** Registers the MasterService on a Connect router, for embedding. */
  routes(router: ConnectRouter): void;
  /** Interceptors to install with {@link routes}: token check and metrics. */
  readonly interceptors: Interceptor[];
  /**
   * A Node request handler serving the master (Connect, gRPC, gRPC-Web and
   * `/metrics`), to pass to your own `http2.createSecureServer(opts, handler)`.
   */
  readonly handler: ReturnType<typeof connectNodeAdapter>;
  /**
   * Context values for a request, for frameworks that take a
   * `contextValues(req)` option (such as @connectrpc/connect-fastify): the
   * master learns the caller's IP, its fallback for reaching agents.
   */
  contextValues(req: {
    socket?: { remoteAddress?: string | undefined } | null;
  }): ReturnType<typeof createContextValues>;
  /**
   * For frameworks mounting {@link routes}: true when a request may reach
   * them (it carries the token, or calls Health or grpc.health.v1
   * uncompressed). Connect reads
   * and decompresses a request before the interceptors check the token, so
   * check this first (fastify: an `onRequest` hook) and answer 401
   * otherwise; `master.handler` and `listen()` do it themselves.
   */
  authorize(req: {
    url?: string | undefined;
    headers: Readonly<Record<string, string | string[] | undefined>>;
  }): boolean;
  /** Prometheus text of the master's metrics. */
  metrics(): Promise<string>;
  /** Registry changes as an async iterator; ends when `signal` aborts or the master stops. */
  events(signal?: AbortSignal): AsyncIterable<MasterEvent>;
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

/** The shortest cluster token a master accepts. */
const MIN_TOKEN_LENGTH = 16;

/** Creates a master. Nothing listens until {@link Master.listen}. */
export function createMaster(options: MasterOptions): Master {
  const log = options.logger ?? silent;
  if (!options.token)
    throw new SlothError("SLOTH_TOKEN_MISSING", "cannot start master: the cluster token is empty");
  // Anyone who guesses it can run commands on every agent.
  if (options.token.length < MIN_TOKEN_LENGTH)
    throw new SlothError(
      "SLOTH_INVALID_ARGUMENT",
      `cannot start master: the cluster token is too short (${options.token.length} characters; at least ${MIN_TOKEN_LENGTH})`,
      {
        hint: "use a long random token: delete the token file and let the master create one (256 random bits)",
      },
    );
  if (typeof options.registryPath !== "string" || options.registryPath === "")
    throw new SlothError(
      "SLOTH_INVALID_ARGUMENT",
      "cannot create the master: registryPath must name a file",
      { hint: 'give the SQLite file of its agent registry, such as "registry.db"' },
    );
  checkTimings(options);
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
    requireAgentTls: options.requireAgentTls ?? options.tls !== undefined,
  };
  registry.on("registered", (a) =>
    log.info(
      { agent: a.name, address: a.address, status: a.status, reason: a.statusReason || undefined },
      "agent registered",
    ),
  );
  registry.on("status", (a, s) => {
    log.info(
      { agent: a.name, status: s, reason: a.statusReason || undefined },
      "agent status changed",
    );
    // Connections to agents that went quiet stay open: a run relayed on one
    // may still be streaming; idle sessions close themselves.
  });
  registry.on("removed", (a) => log.info({ agent: a.name }, "agent removed"));

  const service = createMasterService(deps);
  // The master is the one process writing this file; opened on the first state call.
  let state: Promise<StateBackend> | undefined;
  const openStore = () => {
    state ??= openStateBackend({
      path: options.statePath ?? path.join(path.dirname(options.registryPath), "state.db"),
    }).catch((e: unknown) => {
      state = undefined;
      throw e;
    });
    return state;
  };
  const stateService = createStateService(openStore, shutdown.signal);
  // grpc.health.v1 for probes and server reflection for grpcurl; NOT_SERVING once stopping.
  const standard = createStandardServices({
    services: [MasterService, StateService],
    signal: shutdown.signal,
  });
  const publicMethods = ["Health", ...STANDARD_PUBLIC_METHODS];
  const routes = (router: ConnectRouter) => {
    router.service(MasterService, service);
    router.service(StateService, stateService);
    standard.routes(router);
  };
  const metrics = createMasterMetrics(registry, () => deps.runs.inFlight);
  const interceptors = [
    metrics.interceptor,
    createAuthInterceptor({ token: options.token, publicMethods }),
  ];
  const handler = withSpecGrpcMessages(
    // A caller without the token gets its request read only up to a few
    // KiB: Connect reads (and decompresses) it before the token check runs.
    tokenTieredHandler(options.token, (readMaxBytes) =>
      connectNodeAdapter({
        routes,
        interceptors,
        readMaxBytes,
        // Never compress responses, as agents do not: relayed command output
        // would be gzipped here and gunzipped by the client, costing far more CPU
        // than it saves on the links masters use. Compressed requests are accepted.
        compressMinBytes: Number.MAX_SAFE_INTEGER,
        contextValues: (req) =>
          createContextValues().set(remoteAddressKey, req.socket?.remoteAddress),
        fallback: (req, res) => {
          if (answerMetrics(req, res, metrics.registry)) return;
          res.writeHead(404, { "content-type": "text/plain" });
          res.end("not found\n");
        },
      }),
    ),
  );

  // Connect binary RunOnAgent calls over HTTP/2 skip the Connect handler:
  // the agent's frames are passed on as they are (see fast-relay.ts).
  const fast = createFastRelay({
    service: deps,
    token: options.token,
    observer: { ended: (method, code, secs) => metrics.record(method, code, secs) },
  });
  // Connect binary Heartbeat calls over HTTP/2 too (see fast-heartbeat.ts).
  const fastHeartbeat = createFastHeartbeat({
    service: deps,
    token: options.token,
    observer: { ended: (method, code, secs) => metrics.record(method, code, secs) },
  });
  const connectHandler = handler;
  const serve: typeof handler = (req, res) => {
    if (!fastHeartbeat(req) && !fast(req)) connectHandler(req, res);
  };

  let dual: DualServer | undefined;
  let secure: http2.Http2SecureServer | undefined;
  const secureSessions = new Set<http2.ServerHttp2Session>();
  registry.start();
  // Unreachable agents that keep heartbeating are probed again, so a fixed
  // network path brings them back without a restart.
  let reprobe: NodeJS.Timeout | undefined = setInterval(() => {
    for (const a of registry.list()) {
      if (a.status !== "unreachable") continue;
      void probe(deps, a.name, a.address, a.tls).then((reason) => {
        if (!reason && registry.get(a.name)?.status === "unreachable")
          registry.setStatus(a.name, "active", "");
      });
    }
  }, 15_000);
  reprobe.unref();

  const listenOn = (
    srv: {
      listen: (port: number, host: string, cb: () => void) => unknown;
      once: (e: "error", f: (e: NodeJS.ErrnoException) => void) => unknown;
    },
    port: number,
    bind: string,
  ) =>
    new Promise<void>((resolve, reject) => {
      srv.once("error", (e) => {
        if (e.code === "EADDRINUSE") {
          reject(
            new SlothError("SLOTH_PORT_IN_USE", `port ${port} is already in use on ${bind}`, {
              hint: "stop the other process, or choose another port (the `port` option)",
              cause: e,
            }),
          );
        } else if (e.code === "ENOTFOUND" || e.code === "EAI_AGAIN") {
          reject(
            new SlothError("SLOTH_INVALID_ADDRESS", `cannot bind ${bind}: no such host`, {
              hint: "give an IP address or host name of this machine (bind)",
              cause: e,
            }),
          );
        } else if (e.code === "EADDRNOTAVAIL") {
          reject(
            new SlothError("SLOTH_INVALID_ADDRESS", `cannot bind ${bind}: no such local address`, {
              hint: "choose an address of this machine with --bind",
              cause: e,
            }),
          );
        } else reject(e);
      });
      srv.listen(port, bind, () => resolve());
    });

  let listening = false;
  // A master that never served says nothing when it is cleaned up.
  let listenFailed = false;
  return {
    registry,
    routes,
    interceptors,
    handler: serve,
    metrics: () => metrics.registry.metrics(),
    contextValues: (req) => createContextValues().set(remoteAddressKey, req.socket?.remoteAddress),
    authorize: (req) => requestAllowed(req, options.token, publicMethods),
    events: (signal) =>
      masterEvents(registry, AbortSignal.any([shutdown.signal, ...(signal ? [signal] : [])])),
    runsInFlight: () => deps.runs.inFlight,
    async listen() {
      if (shutdown.signal.aborted)
        throw new SlothError("SLOTH_INVALID_ARGUMENT", "cannot listen: this master was stopped", {
          hint: "create a new one with createMaster()",
        });
      if (listening)
        throw new SlothError(
          "SLOTH_INVALID_ARGUMENT",
          "cannot listen: the master listens already",
          {
            hint: "call listen() once; stop() closes the server it opened",
          },
        );
      const port = options.port ?? 50053;
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new SlothError("SLOTH_INVALID_ARGUMENT", `cannot listen on port ${port}`, {
          hint: "give a port from 1 to 65535, or 0 for any free port",
        });
      listening = true;
      const bind = options.bind ?? "0.0.0.0";
      let address: AddressInfo;
      if (options.tls) {
        const srv = http2.createSecureServer(
          {
            cert: options.tls.cert,
            key: options.tls.key,
            ca: options.tls.ca,
            requestCert: options.tls.ca !== undefined,
            rejectUnauthorized: options.tls.ca !== undefined,
            allowHTTP1: true,
            settings: { maxConcurrentStreams: MAX_STREAMS_PER_SESSION },
          },
          serve,
        );
        srv.on("session", (s) => {
          secureSessions.add(s);
          s.once("close", () => secureSessions.delete(s));
          closeIfSilent(s);
        });
        await listenOn(srv, port, bind).catch((e: unknown) => {
          listening = false;
          listenFailed = true;
          throw e;
        });
        secure = srv;
        address = srv.address() as AddressInfo;
      } else {
        const d = createDualServer(serve);
        await listenOn(d.server, port, bind).catch((e: unknown) => {
          listening = false;
          listenFailed = true;
          throw e;
        });
        dual = d;
        address = d.server.address() as AddressInfo;
      }
      log.info({ bind, port: address.port, tls: options.tls !== undefined }, "master listening");
      return { address: formatHostPort(bind, address.port), port: address.port };
    },
    async stop() {
      if (shutdown.signal.aborted) return;
      shutdown.abort();
      clearInterval(reprobe);
      reprobe = undefined;
      dual?.server.close();
      secure?.close();
      const deadline = Date.now() + (options.shutdownTimeoutMs ?? 30_000);
      if (deps.runs.inFlight > 0)
        log.info({ runs: deps.runs.inFlight }, "waiting for runs in flight");
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
      // Let the last responses (trailers of finished runs) reach the clients
      // before cutting the connections.
      const secureClosed = [...secureSessions].map(
        (s) => new Promise<void>((resolve) => s.close(() => resolve())),
      );
      let timer: NodeJS.Timeout | undefined;
      await Promise.all([
        dual?.closeSessions(2000),
        Promise.race([
          Promise.all(secureClosed),
          new Promise((r) => {
            timer = setTimeout(r, 2000);
          }),
        ]),
      ]);
      clearTimeout(timer);
      dual?.destroyConnections();
      for (const s of secureSessions) s.destroy();
      pool.closeAll();
      registry.close();
      await (await state?.catch(() => undefined))?.close();
      if (!listenFailed || listening) log.info({}, "master stopped");
    },
  };
}

function masterEvents(registry: AgentRegistry, signal: AbortSignal): AsyncIterable<MasterEvent> {
  // Listening starts now, not at the first next(): nothing between the call
  // and the first read is lost. Events queued before the end are delivered.
  const queue: MasterEvent[] = [];
  let wake: (() => void) | undefined;
  const push = (e: MasterEvent) => {
    queue.push(e);
    wake?.();
  };
  const onRegistered = (agent: AgentEntry) => push({ type: "registered", agent });
  const onStatus = (agent: AgentEntry, status: AgentState) =>
    push({ type: "status", agent, status });
  const onRemoved = (agent: AgentEntry) => push({ type: "removed", agent });
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    registry.off("registered", onRegistered);
    registry.off("status", onStatus);
    registry.off("removed", onRemoved);
    signal.removeEventListener("abort", end);
    wake?.();
  };
  if (signal.aborted) ended = true;
  else {
    registry.on("registered", onRegistered);
    registry.on("status", onStatus);
    registry.on("removed", onRemoved);
    signal.addEventListener("abort", end, { once: true });
  }
  async function* read(): AsyncGenerator<MasterEvent> {
    try {
      for (;;) {
        const next = queue.shift();
        if (next) yield next;
        else if (ended) return;
        else {
          await new Promise<void>((r) => {
            wake = r;
          });
          wake = undefined;
        }
      }
    } finally {
      end();
      queue.length = 0;
    }
  }
  return read();
}

/** Heartbeat settings that cannot work are refused at start, not found out by flapping agents. */
function checkTimings(o: MasterOptions): void {
  const interval = o.heartbeatIntervalMs ?? 5000;
  const ttl = o.agentTtlMs ?? 15_000;
  const bad = (what: string, hint: string) =>
    new SlothError("SLOTH_INVALID_ARGUMENT", `cannot start master: ${what}`, { hint });
  if (!(interval >= 100))
    throw bad(
      `a heartbeat interval of ${interval} ms would have agents call it nonstop`,
      "use at least 100ms (default 5s) with --heartbeat-interval",
    );
  if (!(ttl >= interval))
    throw bad(
      `an agent TTL of ${ttl} ms is shorter than the heartbeat interval (${interval} ms)`,
      "use an --agent-ttl of at least the interval (default 3 intervals)",
    );
  if (!((o.agentGraceMs ?? 10_000) >= 0) || !((o.shutdownTimeoutMs ?? 0) >= 0))
    throw bad("a negative duration", "use durations of 0 or more");
}
