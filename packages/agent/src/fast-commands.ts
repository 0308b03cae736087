import type http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-connect";
import {
  CONNECT_STREAM_PROTO,
  endStreamFrame,
  isPlainConnectCall,
  messageFrame,
  readConnectRequest,
} from "@sloth/client";
import { RunCommandRequestSchema, RunCommandResponseSchema } from "@sloth/proto";
import { commandEvents, type ServiceContext } from "./service.js";

const PATH = "/sloth.agent.v1.AgentService/RunCommand";

/**
 * The fast path of `RunCommand`: a Connect binary call over HTTP/2 with a
 * valid token (what the master and `@sloth/client` send) is served here,
 * writing each event as a frame as soon as it happens, without the Connect
 * handler's machinery. Returns false, untouched, for any other request,
 * which the Connect handler then serves (gRPC, JSON, HTTP/1.1, a bad token).
 */
export function createFastCommands(ctx: ServiceContext, token: string): (req: unknown) => boolean {
  return (raw) => {
    if (!isPlainConnectCall(raw, PATH, token)) return false;
    const req = raw as http2.Http2ServerRequest;
    void serve(ctx, req.stream, req.headers);
    return true;
  };
}

async function serve(
  ctx: ServiceContext,
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
): Promise<void> {
  // A reset by the caller surfaces as 'close'; never as an uncaught error.
  stream.on("error", () => undefined);
  let responded = false;
  const respond = () => {
    if (responded || stream.destroyed) return;
    responded = true;
    stream.respond({ ":status": 200, "content-type": CONNECT_STREAM_PROTO });
  };
  const end = (error?: ConnectError) => {
    if (stream.destroyed || stream.writableEnded) return;
    respond();
    stream.end(endStreamFrame(error));
  };
  const deadline = headers["connect-timeout-ms"];
  const timeout = parseTimeout(typeof deadline === "string" ? deadline : null, 2 ** 31 - 1);
  if (timeout.error) return end(timeout.error);
  const body = await readConnectRequest(stream);
  if (body === undefined) return;
  if (body instanceof ConnectError) return end(body);
  let spec: ReturnType<typeof fromBinary<typeof RunCommandRequestSchema>>["spec"];
  try {
    spec = fromBinary(RunCommandRequestSchema, body).spec;
  } catch (e) {
    return end(new ConnectError(`cannot read the request: ${String(e)}`, Code.InvalidArgument));
  }

  if (stream.closed || stream.destroyed) return;
  const abort = new AbortController();
  const onClose = () => abort.abort(new ConnectError("cancelled by the caller", Code.Canceled));
  stream.once("close", onClose);
  const timer =
    timeout.timeoutMs === undefined
      ? undefined
      : setTimeout(
          () => abort.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
          timeout.timeoutMs,
        );
  try {
    for await (const wire of commandEvents(ctx, spec, abort.signal)) {
      if (abort.signal.aborted) break;
      respond();
      const frame = messageFrame(
        toBinary(RunCommandResponseSchema, create(RunCommandResponseSchema, { event: wire })),
      );
      // While the caller does not read, the command's pipes stay paused.
      if (!stream.write(frame)) await drained(stream);
    }
    const reason = abort.signal.reason as unknown;
    end(abort.signal.aborted ? ConnectError.from(reason) : undefined);
  } catch (e) {
    end(ConnectError.from(e));
  } finally {
    clearTimeout(timer);
    stream.off("close", onClose);
  }
}

function drained(stream: http2.ServerHttp2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.once("drain", done);
    stream.once("close", done);
  });
}
