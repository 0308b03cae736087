import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  endStreamFlag,
  endStreamFromJson,
  parseTimeout,
} from "@connectrpc/connect/protocol-connect";
import {
  CONNECT_STREAM_PROTO,
  endStreamFrame,
  isPlainConnectCall,
  messageFrame,
  readConnectRequest,
  SlothError,
  toConnectError,
} from "@sloth/client";
import {
  RunCommandRequestSchema,
  RunCommandResponseSchema,
  RunOnAgentRequestSchema,
} from "@sloth/proto";
import type { AgentEntry } from "./registry.js";
import { agentLink, mustGet, requireUsable, type ServiceDeps } from "./service.js";

/**
 * The fast path of `RunOnAgent`: for the Connect protocol with binary
 * messages over HTTP/2 (what `@sloth/client` and the CLI speak), the master
 * forwards the agent's `RunCommand` response frames to the caller as they
 * come, without decoding them into messages and encoding them again (the two
 * responses are the same bytes). Every other protocol, encoding or caller
 * without a valid token goes through the Connect handler as before, which
 * answers errors in its protocol; errors found here are answered as that
 * handler would.
 */

const PATH = "/sloth.master.v1.MasterService/RunOnAgent";
const AGENT_PATH = "/sloth.agent.v1.AgentService/RunCommand";
const CONTENT_TYPE = CONNECT_STREAM_PROTO;
/** Frames this small are decoded to see whether they carry the exit status. */
const SMALL_FRAME = 4096;

/** How the fast path reports each call to the master's metrics. */
export interface RelayObserver {
  /** Called when a call ends, with its Connect code name ("OK" on success). */
  ended(method: string, code: string, seconds: number): void;
}

export interface FastRelayDeps {
  service: ServiceDeps;
  /** The cluster token callers must present. */
  token: string;
  observer: RelayObserver;
}

type Request = http2.Http2ServerRequest;

/**
 * Returns a function that takes over a request when it is a Connect binary
 * `RunOnAgent` call over HTTP/2 with a valid token (true), or leaves it to
 * the Connect handler (false) without touching it.
 */
export function createFastRelay(deps: FastRelayDeps): (req: unknown) => boolean {
  return (raw) => {
    if (!isPlainConnectCall(raw, PATH, deps.token)) return false;
    if (deps.service.shutdownSignal.aborted) return false;
    const req = raw as Request;
    const started = performance.now();
    const call = new RelayCall(deps, req.stream);
    call.run(req.headers).then(
      (code) => deps.observer.ended("RunOnAgent", code, (performance.now() - started) / 1000),
      () => deps.observer.ended("RunOnAgent", "Internal", (performance.now() - started) / 1000),
    );
    return true;
  };
}

/** One relayed call: the caller's stream, and the agent's once opened. */
class RelayCall {
  private responded = false;
  private finished = false;

  constructor(
    private readonly deps: FastRelayDeps,
    private readonly down: http2.ServerHttp2Stream,
  ) {
    // A reset by the caller surfaces as 'close'; never as an uncaught error.
    down.on("error", () => undefined);
  }

  /** Relays the call to its end; resolves with the Connect code name it ended with. */
  async run(headers: http2.IncomingHttpHeaders): Promise<string> {
    const { down } = this;
    const timeout = parseTimeout(headerValue(headers["connect-timeout-ms"]), 2 ** 31 - 1);
    if (timeout.error) return this.fail(timeout.error);
    const body = await readConnectRequest(down);
    if (body === undefined) return "Canceled";
    if (body instanceof ConnectError) return this.fail(body);
    let agent: AgentEntry;
    let spec: ReturnType<typeof fromBinary<typeof RunOnAgentRequestSchema>>["spec"];
    let req: ReturnType<typeof fromBinary<typeof RunOnAgentRequestSchema>>;
    try {
      req = fromBinary(RunOnAgentRequestSchema, body);
    } catch (e) {
      return this.fail(
        new ConnectError(`cannot read the request: ${String(e)}`, Code.InvalidArgument),
      );
    }
    try {
      agent = mustGet(this.deps.service, req.agentName);
      requireUsable(agent);
      if (!req.spec?.command)
        throw new SlothError("SLOTH_INVALID_ARGUMENT", "cannot run: the command is empty");
      spec = req.spec;
    } catch (e) {
      return this.fail(toConnectError(e));
    }
    const service = this.deps.service;
    service.runs.inFlight++;
    try {
      return await this.relay(agent, spec, timeout.timeoutMs);
    } finally {
      service.runs.inFlight--;
    }
  }

  private async relay(
    agent: AgentEntry,
    spec: NonNullable<ReturnType<typeof fromBinary<typeof RunOnAgentRequestSchema>>["spec"]>,
    timeoutMs: number | undefined,
  ): Promise<string> {
    const { down, deps } = this;
    const pool = deps.service.pool;
    const headers: http2.OutgoingHttpHeaders = {
      "content-type": CONTENT_TYPE,
      "connect-protocol-version": "1",
      authorization: `Bearer ${pool.token}`,
    };
    if (timeoutMs !== undefined) headers["connect-timeout-ms"] = String(timeoutMs);
    let up: http2.ClientHttp2Stream;
    let read: () => void;
    try {
      ({ stream: up, read } = await pool.stream(agent.address, agent.tls, AGENT_PATH, headers));
    } catch (e) {
      return this.fail(toConnectError(agentLink(agent, e)));
    }
    if (this.finished || down.closed || down.destroyed) {
      // The caller left while the connection was being opened.
      this.finished = true;
      up.close(http2.constants.NGHTTP2_CANCEL);
      return "Canceled";
    }
    const message = toBinary(RunCommandRequestSchema, create(RunCommandRequestSchema, { spec }));
    up.end(messageFrame(message));

    return await new Promise<string>((resolve) => {
      let sawExit = false;
      let endFrame: Buffer | undefined;
      const cancel = deps.service.cancelSignal;
      const done = (code: string) => {
        cancel.removeEventListener("abort", onShutdown);
        clearTimeout(timer);
        resolve(code);
      };
      const onShutdown = () => {
        closeUp();
        done(
          this.fail(new ConnectError("cancelled: the master is shutting down", Code.Unavailable)),
        );
      };
      const closeUp = () => {
        if (!up.closed) up.close(http2.constants.NGHTTP2_CANCEL);
      };
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              closeUp();
              done(this.fail(new ConnectError("the operation timed out", Code.DeadlineExceeded)));
            }, timeoutMs);
      cancel.addEventListener("abort", onShutdown, { once: true });
      // The caller went away: the agent stops the command when its stream is cancelled.
      down.once("close", () => {
        if (this.finished) return;
        this.finished = true;
        closeUp();
        done("Canceled");
      });
      up.once("response", (h) => {
        const status = Number(h[":status"]);
        if (status !== 200 || h["content-type"] !== CONTENT_TYPE) {
          closeUp();
          done(this.fail(toConnectError(agentLink(agent, `unexpected HTTP ${status} response`))));
          return;
        }
        this.respond();
      });
      let paused = false;
      const resume = () => {
        paused = false;
        up.resume();
      };
      // Frames are passed on as their bytes arrive, never gathered whole:
      // only the end-of-stream frame is held back, and small frames are
      // also copied aside to see whether they carry the exit status.
      const head = Buffer.alloc(5);
      let headLen = 0;
      let left = 0;
      let isEnd = false;
      let aside: Buffer[] | undefined;
      const frameDone = () => {
        if (isEnd) endFrame = Buffer.concat([head, ...(aside ?? [])]);
        else if (aside && !sawExit) sawExit = isExit(Buffer.concat(aside));
        headLen = 0;
        aside = undefined;
      };
      up.on("data", (chunk: Buffer) => {
        read();
        if (this.finished) return;
        const out: Buffer[] = [];
        let i = 0;
        while (i < chunk.length) {
          if (headLen < 5) {
            const n = Math.min(5 - headLen, chunk.length - i);
            chunk.copy(head, headLen, i, i + n);
            headLen += n;
            i += n;
            if (headLen < 5) break;
            left = head.readUInt32BE(1);
            isEnd = (head[0]! & endStreamFlag) === endStreamFlag;
            aside = isEnd || left <= SMALL_FRAME ? [] : undefined;
            if (!isEnd) out.push(Buffer.from(head));
            if (left === 0) frameDone();
            continue;
          }
          const n = Math.min(left, chunk.length - i);
          const part = chunk.subarray(i, i + n);
          i += n;
          left -= n;
          if (!isEnd) out.push(part);
          aside?.push(part);
          if (left === 0) frameDone();
        }
        if (out.length === 0) return;
        const bytes = out.length === 1 ? out[0]! : Buffer.concat(out);
        if (!down.write(bytes) && !paused) {
          paused = true;
          up.pause();
          down.once("drain", resume);
        }
      });
      up.once("end", () => {
        if (this.finished) return;
        const error = endFrame ? endStreamError(endFrame.subarray(5)) : undefined;
        if (error) {
          // The agent's own refusals pass through as they are; a broken link names the agent.
          if (error.code === Code.Unavailable || error.code === Code.Unknown)
            done(this.fail(toConnectError(agentLink(agent, error))));
          else done(this.passOn(endFrame!, error));
        } else if (!sawExit || headLen > 0) {
          done(
            this.fail(
              toConnectError(agentLink(agent, new Error("stream ended without an exit status"))),
            ),
          );
        } else done(this.finish());
      });
      up.on("error", (e) => {
        if (this.finished) return;
        done(this.fail(toConnectError(agentLink(agent, e))));
      });
      // Reset by the agent (or its connection lost) without an error event.
      up.once("close", () => {
        if (this.finished) return;
        const why = new Error(`stream closed (code ${up.rstCode ?? "none"})`);
        done(this.fail(toConnectError(agentLink(agent, why))));
      });
    });
  }

  private respond(): void {
    if (this.responded || this.down.destroyed) return;
    this.responded = true;
    this.down.respond({ ":status": 200, "content-type": CONTENT_TYPE });
  }

  /** Ends the call with the agent's own end-of-stream frame (its error). */
  private passOn(frame: Buffer, error: ConnectError): string {
    if (!this.finished) {
      this.finished = true;
      if (!this.down.destroyed) {
        this.respond();
        this.down.end(frame);
      }
    }
    return Code[error.code] ?? "Unknown";
  }

  /** Ends the call well. */
  private finish(): string {
    this.end(undefined);
    return "OK";
  }

  /** Ends the call with `error`; the code's name. */
  private fail(error: ConnectError): string {
    this.end(error);
    return Code[error.code] ?? "Unknown";
  }

  private end(error: ConnectError | undefined): void {
    if (this.finished) return;
    this.finished = true;
    if (this.down.destroyed) return;
    this.respond();
    this.down.end(endStreamFrame(error));
  }
}

function headerValue(v: string | string[] | undefined): string | null {
  return v === undefined ? null : Array.isArray(v) ? (v[0] ?? null) : v;
}

function isExit(message: Uint8Array): boolean {
  try {
    return fromBinary(RunCommandResponseSchema, message).event?.event.case === "exit";
  } catch {
    return false;
  }
}

function endStreamError(json: Uint8Array): ConnectError | undefined {
  try {
    return endStreamFromJson(json).error;
  } catch (e) {
    return new ConnectError(`cannot read the agent's end of stream: ${String(e)}`, Code.Unknown);
  }
}
