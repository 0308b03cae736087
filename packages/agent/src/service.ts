import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import type { RunTaskRequest } from "@sloth/proto";
import { AgentService, type RunCommandRequest, type RunCommandResponseSchema } from "@sloth/proto";
import type { CommandTracker } from "./command-tracker.js";
import type { AgentLogger } from "./logger.js";
import { type CpuSampler, collectMetrics } from "./metrics.js";
import { JOB_MARK_ENV } from "./orphans.js";
import type { AgentPrometheus } from "./prometheus.js";
import { type RunCommandOptions, runCommand } from "./run-command.js";
import { shellHandler } from "./shell.js";
import { runDelegatedTask, type TaskRunnerContext } from "./task-runner.js";
import { type EventInit, toWire } from "./wire.js";

/** What the AgentService handlers need from the agent. */
export interface ServiceContext {
  name: string;
  version: string;
  tracker: CommandTracker;
  sampler: CpuSampler;
  /** Default workdir of commands and the disk reported in metrics. */
  workdir: string;
  runOptions: Pick<RunCommandOptions, "killGraceMs" | "exitDrainMs" | "highWaterBytes">;
  logger: AgentLogger;
  /** Called by the Shutdown RPC, after its reply is sent. */
  onShutdown(graceMs: number | undefined): void;
  /** Prometheus metrics, when the agent serves them. */
  prometheus?: AgentPrometheus | undefined;
  /** Runs delegated workflow tasks. */
  tasks: TaskRunnerContext;
  /** The content-addressed workspace cache. */
  workspace?: WorkspaceSupport | undefined;
}

/** The agent's side of workspace shipping. */
export interface WorkspaceSupport {
  /** Starts building a workspace for a manifest; answers the blobs the cache lacks. */
  missing(manifestJson: string): Promise<string[]>;
  /** The same for a manifest received lately, named by the SHA-256 of its JSON; undefined when not known. */
  missingKnown(manifestSha256: string): Promise<string[] | undefined>;
  /** Starts checking the kept workspace built from the manifest with this SHA-256, for recycling. */
  warm(previousManifestSha256: string): void;
  ingest(
    chunks: AsyncIterable<Uint8Array>,
    gzip: boolean,
  ): Promise<{ blobs: number; bytes: number }>;
}

/**
 * Runs a command for a caller and yields its events as they go on the wire;
 * `signal` aborts it (the caller went away). Shared by the Connect handler
 * and the hand-served fast path.
 */
export async function* commandEvents(
  ctx: ServiceContext,
  spec: RunCommandRequest["spec"],
  signal: AbortSignal,
): AsyncGenerator<EventInit> {
  if (!spec || spec.command === "") {
    throw new ConnectError("cannot run command: the command is empty", Code.InvalidArgument);
  }
  if (!ctx.tracker.accepting) {
    throw new ConnectError(`agent '${ctx.name}' is shutting down`, Code.Unavailable);
  }
  const run = ctx.tracker.track(signal);
  const log = { command: spec.command, workdir: spec.workdir || undefined };
  ctx.logger.debug(log, "command starting");
  try {
    const events = runCommand(
      {
        command: spec.command,
        workdir: spec.workdir,
        env: { ...spec.env, [JOB_MARK_ENV]: run.mark },
        timeoutMs: Number(spec.timeoutMs),
      },
      { ...ctx.runOptions, signal: run.signal, defaultWorkdir: ctx.workdir },
    );
    for await (const event of events) {
      const wire = toWire(event);
      if (wire.event?.case === "started") wire.event.value.agentName = ctx.name;
      if (event.type === "output") ctx.prometheus?.output(event.stream, event.data.length);
      if (event.type === "exit") {
        ctx.prometheus?.commandFinished(
          event.startError
            ? "start-error"
            : event.timedOut
              ? "timeout"
              : event.signal
                ? "signal"
                : event.exitCode === 0
                  ? "ok"
                  : "failed",
          event.durationMs,
        );
        ctx.logger.info(
          {
            ...log,
            exitCode: event.exitCode,
            signal: event.signal || undefined,
            durationMs: event.durationMs,
            timedOut: event.timedOut || undefined,
            startError: event.startError || undefined,
          },
          "command finished",
        );
      }
      yield wire;
    }
    if (run.signal.aborted) ctx.logger.info(log, "command cancelled");
  } finally {
    run.release();
  }
}

async function* runCommandHandler(
  ctx: ServiceContext,
  req: RunCommandRequest,
  call: HandlerContext,
): AsyncGenerator<MessageInitShape<typeof RunCommandResponseSchema>> {
  for await (const wire of commandEvents(ctx, req.spec, call.signal)) {
    // Past its deadline (or gone), the call ends with that error, as on the fast path.
    if (call.signal.aborted) break;
    yield { event: wire };
  }
  if (call.signal.aborted) throw ConnectError.from(call.signal.reason);
}

async function* runTaskHandler(ctx: ServiceContext, req: RunTaskRequest, call: HandlerContext) {
  if (!req.task) throw new ConnectError("cannot run task: no task name", Code.InvalidArgument);
  if (!ctx.tracker.accepting)
    throw new ConnectError(`agent '${ctx.name}' is shutting down`, Code.Unavailable);
  const run = ctx.tracker.track(call.signal);
  ctx.logger.info(
    { task: req.task, workflow: req.workflow, run: req.runId || undefined },
    "task starting",
  );
  try {
    for await (const response of runDelegatedTask(req, ctx.tasks, run.signal, run.mark)) {
      if (response.event?.case === "result") {
        ctx.logger.info(
          {
            task: req.task,
            ok: response.event.value.ok,
            message: response.event.value.message || undefined,
          },
          "task finished",
        );
      }
      yield response;
    }
  } finally {
    run.release();
  }
}

/** Registers the AgentService handlers on a Connect router. */
export function agentRoutes(ctx: ServiceContext): (router: ConnectRouter) => void {
  return (router) => {
    router.service(AgentService, {
      runCommand: (req, call) => runCommandHandler(ctx, req, call),
      async prepareWorkspace(req) {
        if (!ctx.workspace)
          throw new ConnectError("this agent cannot receive workspaces", Code.Unimplemented);
        if (req.previousManifestSha256) ctx.workspace.warm(req.previousManifestSha256);
        // Small blobs may come several to a tar entry (packBlobs' bundle).
        const blobBundles = true;
        if (req.manifestJson === "" && req.manifestSha256 !== "") {
          const missing = await ctx.workspace.missingKnown(req.manifestSha256);
          return missing
            ? { missing, manifestKnown: true, blobBundles }
            : { missing: [], blobBundles };
        }
        if (req.manifestJson === "") return { missing: [], blobBundles };
        return { missing: await ctx.workspace.missing(req.manifestJson), blobBundles };
      },
      async uploadBlobs(requests) {
        if (!ctx.workspace)
          throw new ConnectError("this agent cannot receive workspaces", Code.Unimplemented);
        let gzip = false;
        let first = true;
        async function* chunks() {
          for await (const r of requests) {
            if (first) gzip = r.gzip;
            first = false;
            yield r.chunk;
          }
        }
        const it = chunks();
        const head = await it.next();
        async function* all() {
          if (!head.done) yield head.value;
          yield* it;
        }
        const r = await ctx.workspace.ingest(all(), gzip);
        return { blobs: BigInt(r.blobs), bytes: BigInt(r.bytes) };
      },
      runTask: (req, call) => runTaskHandler(ctx, req, call),
      shell: (requests, call) => shellHandler(ctx, requests, call),
      getMetrics() {
        const m = collectMetrics(ctx.sampler, ctx.workdir);
        return {
          metrics: {
            cpuPercent: m.cpuPercent,
            cpuCount: m.cpuCount,
            memoryTotalBytes: BigInt(m.memoryTotalBytes),
            memoryUsedBytes: BigInt(m.memoryUsedBytes),
            diskPath: m.diskPath,
            diskTotalBytes: BigInt(m.diskTotalBytes),
            diskUsedBytes: BigInt(m.diskUsedBytes),
            load1: m.load1,
            load5: m.load5,
            load15: m.load15,
            uptimeSeconds: BigInt(m.uptimeSeconds),
            processUptimeSeconds: BigInt(m.processUptimeSeconds),
            version: ctx.version,
            runningCommands: ctx.tracker.running,
            processRssBytes: BigInt(m.processRssBytes),
            collectedAt: timestampFromDate(m.collectedAt),
          },
        };
      },
      health() {
        return { name: ctx.name, version: ctx.version, runningCommands: ctx.tracker.running };
      },
      shutdown(req) {
        const grace = req.graceMs > 0n ? Number(req.graceMs) : undefined;
        ctx.logger.info({ graceMs: grace }, "shutdown requested");
        // Deferred so the reply leaves before the server starts closing.
        setImmediate(() => ctx.onShutdown(grace));
        return {};
      },
    });
  };
}
