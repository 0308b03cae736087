import fs from "node:fs";
import path from "node:path";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  createAuthInterceptor,
  createStandardServices,
  formatHostPort,
  isSlothError,
  resolveDataDir,
  SlothError,
  STANDARD_PUBLIC_METHODS,
  slothErrorInterceptor,
} from "@sloth/client";
import { AgentService } from "@sloth/proto";
import type { BackoffOptions } from "./backoff.js";
import { CommandTracker } from "./command-tracker.js";
import type { AgentEvent, AgentStatus } from "./events.js";
import { createFastCommands } from "./fast-commands.js";
import { type AgentIdentity, loadOrCreateIdentity } from "./identity.js";
import { type AgentLogger, silentLogger } from "./logger.js";
import { CpuSampler } from "./metrics.js";
import { validateAgentOptions } from "./options.js";
import { JobLedger, reapOrphans } from "./orphans.js";
import { createAgentPrometheus, serveMetrics } from "./prometheus.js";
import { type HeartbeatOptions, runRegistration, sayGoodbye } from "./registration.js";
import { listenRpc, type RpcServer } from "./server.js";
import { agentRoutes, type ServiceContext } from "./service.js";
import { stopSpawner, warmSpawner } from "./spawner.js";
import { systemFacts } from "./system-facts.js";
import { defaultScratchDir, removeStaleTaskFolders } from "./task-runner.js";
import { AGENT_VERSION } from "./version.js";
import { createWorkspaceSupport } from "./workspace-support.js";

/** Options of {@link createAgent}. */
export interface AgentOptions {
  /** Master `HOST:PORT` to register with. */
  masterAddress: string;
  /** The cluster token: sent to the master, required from callers. */
  token: string;
  /** Agent name (default: the host name). */
  name?: string | undefined;
  /** Port to listen on (default 50051; 0 picks a free port). */
  port?: number | undefined;
  /** Address to listen on (default 0.0.0.0). */
  bindAddress?: string | undefined;
  /** `HOST:PORT` the master should dial, when it differs from the bind address. */
  reportAddress?: string | undefined;
  /** Labels reported to the master. */
  labels?: Readonly<Record<string, string>> | undefined;
  /** Data directory (default: SLOTH_RUNNER_DATA_DIR, else ~/.sloth-runner). */
  dataDir?: string | undefined;
  /** Default working directory of commands (default: process.cwd()). */
  workdir?: string | undefined;
  /** How long a stop lets running commands finish (default 30 000 ms). */
  shutdownGraceMs?: number | undefined;
  /** SIGTERM to SIGKILL delay when killing a command (default 2000 ms). */
  killGraceMs?: number | undefined;
  /** Heartbeat overrides (tests); default: what the master's reply says. */
  heartbeat?: HeartbeatOptions | undefined;
  /** Retry backoff towards the master (default 500 ms doubling up to 30 s). */
  backoff?: BackoffOptions | undefined;
  /** Deadline of each call to the master (default 10 000 ms). */
  rpcTimeoutMs?: number | undefined;
  /** pino-compatible logger (default: silent). */
  logger?: AgentLogger | undefined;
  /** Called for every {@link AgentEvent}; must not throw. */
  onEvent?: ((event: AgentEvent) => void) | undefined;
  /**
   * Serve TLS with this certificate, and present it to the master as client
   * certificate. With `ca`, callers must present a certificate signed by it
   * (mTLS) and the master's certificate is verified against it.
   */
  tls?: AgentTls | undefined;
  /** Serve Prometheus `/metrics` over HTTP on this port (0 picks one); off when undefined. */
  metricsPort?: number | undefined;
  /**
   * Finished workspaces of delegated tasks kept to recycle for the next task
   * with a similar manifest (default 2); 0 deletes each after its task. A
   * recycled folder is repaired to exactly the next task's files.
   */
  keepWorkspaces?: number | undefined;
  /**
   * Bound of the content cache of delegated tasks' files, in bytes (default
   * 5 GiB): after each task the least recently used packs beyond it go.
   */
  cacheLimitBytes?: number | undefined;
}

/** Default bound of the workspace cache: 5 GiB. */
const DEFAULT_CACHE_LIMIT = 5 * 1024 ** 3;
/** TLS material of an agent, PEM. */
export interface AgentTls {
  cert: string | Buffer;
  key: string | Buffer;
  ca?: string | Buffer | undefined;
}

/** Where a started agent listens. */
export interface AgentAddress {
  /** `HOST:PORT` listened on (the bind address and actual port). */
  address: string;
  port: number;
  /** Port of the Prometheus `/metrics` endpoint, when `metricsPort` was set. */
  metricsPort?: number | undefined;
}

/** Options of {@link Agent.stop}. */
export interface StopOptions {
  /** Overrides `shutdownGraceMs`; 0 kills running commands at once. */
  graceMs?: number | undefined;
}

/** A Sloth Runner agent: an AgentService server that registers with a master. */
export interface Agent {
  readonly name: string;
  readonly version: string;
  /**
   * Listens, then registers in the background (retrying forever while the
   * master is unreachable). Rejects when the port cannot be bound.
   */
  start(): Promise<AgentAddress>;
  /** Stops registering, lets commands finish up to the grace, then closes. */
  stop(options?: StopOptions): Promise<void>;
  /** Registration state now. */
  status(): AgentStatus;
  /** Resolves once the master has accepted the agent; rejects if it stops first. */
  registered(): Promise<void>;
  /**
   * Resolves when the agent has stopped (stop(), Shutdown RPC); rejects
   * with {@link AgentNameHeldError} when the master refused the name.
   */
  wait(): Promise<void>;
}

function cancelled(message: string): SlothError {
  return new SlothError("SLOTH_CANCELLED", message);
}

/** Creates an agent; nothing happens until {@link Agent.start}. */
export function createAgent(options: AgentOptions): Agent {
  const o = validateAgentOptions(options);
  const logger = options.logger ?? silentLogger;
  const dataDir = resolveDataDir(options.dataDir);
  const tracker = new CommandTracker();
  const sampler = new CpuSampler();
  const stopController = new AbortController();
  const state: AgentStatus = {
    registered: false,
    master: options.masterAddress,
    lastError: undefined,
    registeredAt: undefined,
    lastHeartbeatAt: undefined,
    heartbeatIntervalMs: undefined,
    runningCommands: 0,
    state: "new",
  };
  let server: RpcServer | undefined;
  let closeWorkspaces: (() => Promise<void>) | undefined;
  let metricsServer: { port: number; close(): Promise<void> } | undefined;
  const prometheus =
    options.metricsPort === undefined ? undefined : createAgentPrometheus(() => tracker.running);
  let registration: Promise<void> | undefined;
  let goodbye: (() => Promise<void>) | undefined;
  let stopping: Promise<void> | undefined;
  let fatal: SlothError | undefined;
  let settle!: { resolve(): void; reject(e: unknown): void };
  const stopped = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  stopped.catch(() => {});
  const registeredWaiters: Array<{ resolve(): void; reject(e: unknown): void }> = [];

  const emit = (event: AgentEvent) => {
    try {
      options.onEvent?.(event);
    } catch (err) {
      logger.error({ err: String(err) }, "agent event handler threw");
    }
  };

  const stop = (reason: "stop" | "shutdown-rpc" | "fatal", graceMs?: number): Promise<void> => {
    if (stopping) {
      // A second, impatient stop (another Ctrl-C) cuts the grace short.
      if (graceMs === 0) tracker.cancelAll();
      return stopping;
    }
    state.state = "stopping";
    emit({ type: "stopping", reason });
    logger.info({ reason }, "agent stopping");
    stopController.abort();
    stopping = (async () => {
      await registration?.catch(() => {});
      // Marked inactive now, so the master sends nothing new while it drains.
      if (state.registered && !fatal) await goodbye?.();
      await tracker.drain(graceMs ?? o.shutdownGraceMs, o.killGraceMs + 3000);
      tracker.flushLedger();
      await server?.close(1000);
      // Its helper goes with it (started again if another agent of this process needs it).
      await stopSpawner();
      await closeWorkspaces?.().catch(() => {});
      await metricsServer?.close();
      sampler.stop();
      state.state = "stopped";
      state.registered = false;
      const err = fatal ?? cancelled("agent stopped before registering");
      for (const w of registeredWaiters.splice(0)) w.reject(err);
      emit(fatal ? { type: "stopped", error: fatal } : { type: "stopped" });
      logger.info({}, "agent stopped");
      if (fatal) settle.reject(fatal);
      else settle.resolve();
    })();
    return stopping;
  };

  return {
    name: o.name,
    version: AGENT_VERSION,
    async start() {
      if (state.state !== "new") throw cancelled("cannot start agent: it was already started");
      state.state = "running";
      // The token in this process's environment is the agent's secret, not
      // its tasks': delegated tasks and their Lua workers inherit the environment.
      if (process.env.SLOTH_RUNNER_TOKEN === options.token) delete process.env.SLOTH_RUNNER_TOKEN;
      // The agent's folder holds its identity secret: 0700 before anything else creates it.
      fs.mkdirSync(dataDir.agent(o.name).dir, { recursive: true, mode: 0o700 });
      // Commands and tasks an earlier run of this agent had going when it was killed.
      const ledgerFile = path.join(dataDir.agent(o.name).dir, "jobs.json");
      const orphans = await reapOrphans(ledgerFile, (reason) =>
        logger.warn(
          { file: ledgerFile, reason },
          `cannot read the list of jobs an earlier run of this agent had running (moved to ${ledgerFile}.unreadable): processes it started may still be running`,
        ),
      );
      if (orphans.length > 0) {
        logger.warn(
          { pids: orphans },
          `killed ${orphans.length} process(es) left running by an earlier run of this agent`,
        );
        emit({ type: "orphans-killed", pids: orphans });
      }
      tracker.useLedger(new JobLedger(ledgerFile));
      const scratchDir = defaultScratchDir(dataDir.root, o.name);
      removeStaleTaskFolders(scratchDir, (dir, err) =>
        logger.warn(
          { dir, err: String(err) },
          "cannot remove a task folder left by a killed agent",
        ),
      );
      const workspace = await createWorkspaceSupport({
        cacheDir: path.join(dataDir.agent(o.name).dir, "cache"),
        workDir: path.join(scratchDir, "workspaces"),
        keepWorkspaces: options.keepWorkspaces,
        maxCacheBytes: options.cacheLimitBytes ?? DEFAULT_CACHE_LIMIT,
        logger,
      });
      closeWorkspaces = workspace.close;
      const serviceContext: ServiceContext = {
        name: o.name,
        version: AGENT_VERSION,
        tracker,
        sampler,
        workdir: o.workdir,
        runOptions: { killGraceMs: o.killGraceMs },
        logger,
        onShutdown: (grace) => void stop("shutdown-rpc", grace),
        prometheus,
        workspace: workspace.support,
        tasks: {
          name: o.name,
          scratchDir,
          logger,
          ...workspace.task,
          loadOptions: {
            dataDir: dataDir.root,
            // Delegated Lua tasks share the master's keys and locks with the rest of their run.
            state: {
              master: options.masterAddress,
              token: options.token,
              tls: options.tls && {
                ca: options.tls.ca?.toString(),
                cert: options.tls.cert.toString(),
                key: options.tls.key.toString(),
              },
            },
          },
        },
      };
      const agentService = agentRoutes(serviceContext);
      // grpc.health.v1 for probes and server reflection for grpcurl; NOT_SERVING once stopping.
      const standard = createStandardServices({
        services: [AgentService],
        signal: stopController.signal,
      });
      const routes = (router: ConnectRouter) => {
        agentService(router);
        standard.routes(router);
      };
      const fast = createFastCommands(serviceContext, options.token);
      const auth = createAuthInterceptor({
        token: options.token,
        publicMethods: ["Health", ...STANDARD_PUBLIC_METHODS],
      });
      try {
        server = await listenRpc(
          routes,
          [auth, slothErrorInterceptor],
          options.token,
          o.bindAddress,
          o.port,
          options.tls,
          fast,
        );
      } catch (e) {
        state.state = "stopped";
        settle.resolve();
        throw e;
      }
      let identity: AgentIdentity;
      try {
        if (stopController.signal.aborted)
          throw cancelled("cannot start agent: it was stopped while starting");
        identity = loadOrCreateIdentity(dataDir.agent(o.name).identity);
      } catch (e) {
        state.state = "stopped";
        await server.close(0);
        settle.resolve();
        throw e;
      }
      if (identity.created) logger.info({ file: identity.file }, "created agent identity");
      sampler.start();
      // Commands are forked by a small helper process: start it before the first one.
      warmSpawner();
      const address = formatHostPort(o.bindAddress, server.port);
      logger.info(
        { address, name: o.name, version: AGENT_VERSION },
        `agent listening on ${address}`,
      );
      emit({ type: "listening", address, port: server.port });
      if (prometheus && options.metricsPort !== undefined) {
        try {
          metricsServer = await serveMetrics(prometheus, o.bindAddress, options.metricsPort);
          logger.info(
            { port: metricsServer.port },
            `metrics on http://${formatHostPort(o.bindAddress, metricsServer.port)}/metrics`,
          );
        } catch (e) {
          // Asked for and not served is a failed start, as for the RPC port.
          state.state = "stopped";
          sampler.stop();
          await server.close(0);
          await closeWorkspaces?.().catch(() => {});
          settle.resolve();
          throw e;
        }
      }
      const link = {
        master: options.masterAddress,
        token: options.token,
        tls: options.tls,
        name: o.name,
        secret: identity.secret,
      };
      goodbye = () => sayGoodbye(link, tracker.running);
      registration = runRegistration(
        {
          master: options.masterAddress,
          token: options.token,
          tls: options.tls,
          name: o.name,
          secret: identity.secret,
          request: {
            name: o.name,
            reportAddress: o.reportAddress ?? "",
            bindAddress: o.bindAddress,
            port: server.port,
            version: AGENT_VERSION,
            labels: { ...o.labels },
            facts: systemFacts(),
            identitySecret: identity.secret,
            servesTls: options.tls !== undefined,
          },
          heartbeat: options.heartbeat ?? {},
          backoff: options.backoff ?? {},
          rpcTimeoutMs: options.rpcTimeoutMs ?? 10_000,
          runningCommands: () => tracker.running,
          logger,
          emit,
          onState(update) {
            const now = new Date();
            if (update.registered && !state.registered) state.registeredAt = now;
            if (update.registered) {
              state.lastHeartbeatAt = now;
              state.lastError = undefined;
              for (const w of registeredWaiters.splice(0)) w.resolve();
            }
            state.registered = update.registered;
            if (update.lastError) state.lastError = update.lastError;
            if (update.heartbeatIntervalMs !== undefined)
              state.heartbeatIntervalMs = update.heartbeatIntervalMs;
          },
        },
        stopController.signal,
      ).catch((e: unknown) => {
        fatal = isSlothError(e)
          ? e
          : new SlothError("SLOTH_REMOTE", `registration stopped unexpectedly: ${String(e)}`, {
              cause: e,
            });
        state.lastError = fatal;
        logger.error({ err: fatal.message }, fatal.describe());
        void stop("fatal");
      });
      return { address, port: server.port, metricsPort: metricsServer?.port };
    },
    stop: (stopOptions) => stop("stop", stopOptions?.graceMs),
    status: () => ({ ...state, runningCommands: tracker.running }),
    registered() {
      if (state.registered) return Promise.resolve();
      if (state.state === "stopped" || state.state === "stopping") {
        return Promise.reject(fatal ?? cancelled("agent stopped before registering"));
      }
      return new Promise((resolve, reject) => registeredWaiters.push({ resolve, reject }));
    },
    wait: () => stopped,
  };
}
