import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { SlothError, slothCodeOf, toConnectError } from "@sloth/client";
import type {
  MasterService,
  ShellOnAgentRequest,
  ShellRequest,
  UploadBlobsToAgentRequest,
} from "@sloth/proto";
import type { AgentEntry } from "./registry.js";
import type { ServiceDeps } from "./service.js";

type Impl = ServiceImpl<typeof MasterService>;

/** A call naming no agent: a mistake of the caller, not a lookup that failed. */
export function emptyAgentName(): SlothError {
  return new SlothError("SLOTH_INVALID_ARGUMENT", "the agent name is empty", {
    hint: "name an agent: `sloth-runner agent list` shows them",
  });
}

function usableAgent(deps: ServiceDeps, name: string): AgentEntry {
  if (name === "") throw emptyAgentName();
  const a = deps.registry.get(name);
  if (!a) {
    throw new SlothError("SLOTH_AGENT_NOT_FOUND", `agent '${name}' not found`, {
      hint: "run `sloth-runner agent list` to see the registered agents",
    });
  }
  if (a.status === "inactive") {
    throw new SlothError("SLOTH_AGENT_UNAVAILABLE", `agent '${name}' is inactive`, {
      hint: "start the agent again, or run `sloth-runner agent list` to pick an active one",
    });
  }
  return a;
}

/**
 * Why a call ended on the caller's side: its deadline (DEADLINE_EXCEEDED,
 * as the fast paths answer) or the caller going away (CANCELLED).
 */
export function callerEnded(signal: AbortSignal): ConnectError {
  const reason: unknown = signal.reason;
  if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) return reason;
  return new ConnectError("cancelled by the caller", Code.Canceled);
}

function lost(a: AgentEntry, e: unknown): ConnectError {
  // The agent's own answer (a refused archive, say): relayed as it is.
  if (e instanceof ConnectError && slothCodeOf(e) !== undefined) return e;
  if (e instanceof ConnectError && e.code !== Code.Unavailable && e.code !== Code.Unknown) return e;
  const msg = e instanceof ConnectError ? e.rawMessage : String(e);
  return toConnectError(
    new SlothError(
      "SLOTH_AGENT_UNAVAILABLE",
      `agent lost: cannot reach agent '${a.name}' at ${a.address}: ${msg}`,
      {
        retryable: true,
      },
    ),
  );
}

/**
 * The first message of a client stream relayed to an agent, which names the
 * agent, and the rest of the stream.
 */
async function openRelay<T extends { agentName: string }>(
  deps: ServiceDeps,
  requests: AsyncIterable<T>,
  what: string,
): Promise<{ it: AsyncIterator<T>; first: IteratorYieldResult<T>; a: AgentEntry }> {
  const it = requests[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) throw new ConnectError(`${what}: the stream is empty`, Code.InvalidArgument);
  try {
    return { it, first, a: usableAgent(deps, first.value.agentName) };
  } catch (e) {
    throw toConnectError(e);
  }
}

/**
 * Relays an agent's response stream to the caller, counted as a run in
 * flight; a master that cancels its runs (at stop) or a caller that goes
 * away cancels it on the agent.
 */
async function* relayStream<R>(
  deps: ServiceDeps,
  a: AgentEntry,
  ctx: HandlerContext,
  open: (
    client: ReturnType<ServiceDeps["pool"]["client"]>,
    signal: AbortSignal,
  ) => AsyncIterable<R>,
): AsyncGenerator<{ response: R }> {
  const signal = AbortSignal.any([ctx.signal, deps.cancelSignal]);
  deps.runs.inFlight++;
  try {
    for await (const response of open(deps.pool.client(a.address, a.tls), signal))
      yield { response };
  } catch (e) {
    if (ctx.signal.aborted) throw callerEnded(ctx.signal);
    throw lost(a, e);
  } finally {
    deps.runs.inFlight--;
  }
}

/** Relays the delegation calls (workspace and task) to the named agent. */
export function taskRelay(
  deps: ServiceDeps,
): Pick<
  Impl,
  "prepareWorkspaceOnAgent" | "uploadBlobsToAgent" | "runTaskOnAgent" | "shellOnAgent"
> {
  return {
    async prepareWorkspaceOnAgent(req, ctx) {
      let a: AgentEntry;
      try {
        a = usableAgent(deps, req.agentName);
      } catch (e) {
        throw toConnectError(e);
      }
      try {
        const response = await deps.pool
          .client(a.address, a.tls)
          .prepareWorkspace(req.request ?? {}, { signal: ctx.signal });
        return { response };
      } catch (e) {
        throw lost(a, e);
      }
    },
    async uploadBlobsToAgent(
      requests: AsyncIterable<UploadBlobsToAgentRequest>,
      ctx: HandlerContext,
    ) {
      const { it, first, a } = await openRelay(deps, requests, "cannot upload");
      // A caller that goes away mid-upload may leave the request stream
      // neither ended nor failed: its signal ends the relay instead, or the
      // upload would count as a run in flight for ever.
      const gone = new Promise<never>((_, reject) => {
        const fail = () => reject(callerEnded(ctx.signal));
        if (ctx.signal.aborted) fail();
        else ctx.signal.addEventListener("abort", fail, { once: true });
      });
      gone.catch(() => {});
      async function* chunks() {
        if (first.value?.request) yield first.value.request;
        for (
          let r = await Promise.race([it.next(), gone]);
          !r.done;
          r = await Promise.race([it.next(), gone])
        ) {
          if (r.value.request) yield r.value.request;
        }
      }
      deps.runs.inFlight++;
      try {
        const response = await deps.pool
          .client(a.address, a.tls)
          .uploadBlobs(chunks(), { signal: ctx.signal });
        return { response };
      } catch (e) {
        if (ctx.signal.aborted) throw callerEnded(ctx.signal);
        throw lost(a, e);
      } finally {
        deps.runs.inFlight--;
      }
    },
    async *runTaskOnAgent(req, ctx) {
      if (deps.shutdownSignal.aborted)
        throw new ConnectError("master is shutting down", Code.Unavailable);
      let a: AgentEntry;
      try {
        a = usableAgent(deps, req.agentName);
      } catch (e) {
        throw toConnectError(e);
      }
      yield* relayStream(deps, a, ctx, (client, signal) =>
        client.runTask(req.request ?? {}, { signal }),
      );
    },
    async *shellOnAgent(requests: AsyncIterable<ShellOnAgentRequest>, ctx: HandlerContext) {
      if (deps.shutdownSignal.aborted)
        throw new ConnectError("master is shutting down", Code.Unavailable);
      const { it, first, a } = await openRelay(deps, requests, "cannot open a shell");
      async function* input(): AsyncGenerator<ShellRequest> {
        if (first.value?.request) yield first.value.request;
        for (let r = await it.next(); !r.done; r = await it.next())
          if (r.value.request) yield r.value.request;
      }
      yield* relayStream(deps, a, ctx, (client, signal) => client.shell(input(), { signal }));
    },
  };
}
