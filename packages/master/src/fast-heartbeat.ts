import type http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  answerUnary,
  answerUnaryError,
  isPlainConnectUnary,
  readUnaryRequest,
  TRUSTED_READ_MAX_BYTES,
  toConnectError,
} from "@sloth/client";
import { HeartbeatRequestSchema, HeartbeatResponseSchema } from "@sloth/proto";
import type { RelayObserver } from "./fast-relay.js";
import { answerHeartbeat, type ServiceDeps } from "./service.js";

/**
 * The fast path of `Heartbeat`, the call a master answers most (10,000
 * agents send 250 a second): a Connect unary call with a binary message over
 * HTTP/2 and a valid token (what agents send) is answered here, by the same
 * code as the Connect handler's (`answerHeartbeat`), without that handler's
 * per-call machinery: its abort signals, header conversions and async
 * iterables took more than half of the master's CPU per heartbeat. Every
 * other protocol, encoding, or a caller without the token goes through the
 * Connect handler as before.
 */

const PATH = "/sloth.master.v1.MasterService/Heartbeat";

export interface FastHeartbeatDeps {
  service: ServiceDeps;
  /** The cluster token callers must present. */
  token: string;
  observer: RelayObserver;
}

/**
 * Returns a function that takes over a request when it is a plain Connect
 * binary `Heartbeat` call over HTTP/2 with a valid token (true), or leaves
 * it to the Connect handler (false) without touching it.
 */
export function createFastHeartbeat(deps: FastHeartbeatDeps): (req: unknown) => boolean {
  return (raw) => {
    if (!isPlainConnectUnary(raw, PATH, deps.token)) return false;
    const req = raw as http2.Http2ServerRequest;
    serve(deps, req.stream).catch((e: unknown) => {
      answerUnaryError(req.stream, toConnectError(e));
    });
    return true;
  };
}

/**
 * Reads, answers, and reports the call to the metrics as the Connect
 * handler's interceptor would: once the request has been read and decoded,
 * timed from then on (requests that never arrive whole are not counted).
 */
async function serve(deps: FastHeartbeatDeps, stream: http2.ServerHttp2Stream): Promise<void> {
  // A reset by the caller surfaces as 'close'; never as an uncaught error.
  stream.on("error", () => undefined);
  // The Connect handler's limit for callers with the token.
  const body = await readUnaryRequest(stream, TRUSTED_READ_MAX_BYTES);
  if (body === undefined) return;
  if (body instanceof ConnectError) return answerUnaryError(stream, body);
  let req: ReturnType<typeof fromBinary<typeof HeartbeatRequestSchema>>;
  try {
    req = fromBinary(HeartbeatRequestSchema, body);
  } catch (e) {
    return answerUnaryError(
      stream,
      new ConnectError(`cannot read the request: ${String(e)}`, Code.InvalidArgument),
    );
  }
  const started = performance.now();
  let code = "OK";
  try {
    const answer = answerHeartbeat(deps.service, req);
    answerUnary(stream, toBinary(HeartbeatResponseSchema, create(HeartbeatResponseSchema, answer)));
  } catch (e) {
    const error = toConnectError(e);
    code = Code[error.code] ?? "Unknown";
    answerUnaryError(stream, error);
  }
  deps.observer.ended("Heartbeat", code, (performance.now() - started) / 1000);
}
