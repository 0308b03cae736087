import type http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  answerUnary,
  answerUnaryError,
  isPlainConnectUnary,
  readUnaryRequest,
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
/** A heartbeat is a name and a 32-byte secret: far below this. */
const MAX_REQUEST_BYTES = 64 * 1024;

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
    const started = performance.now();
    void serve(deps, req.stream).then((code) =>
      deps.observer.ended("Heartbeat", code, (performance.now() - started) / 1000),
    );
    return true;
  };
}

async function serve(deps: FastHeartbeatDeps, stream: http2.ServerHttp2Stream): Promise<string> {
  // A reset by the caller surfaces as 'close'; never as an uncaught error.
  stream.on("error", () => undefined);
  const fail = (e: unknown): string => {
    const error = toConnectError(e);
    answerUnaryError(stream, error);
    return Code[error.code] ?? "Unknown";
  };
  const body = await readUnaryRequest(stream, MAX_REQUEST_BYTES);
  if (body === undefined) return "Canceled";
  if (body instanceof ConnectError) return fail(body);
  let req: ReturnType<typeof fromBinary<typeof HeartbeatRequestSchema>>;
  try {
    req = fromBinary(HeartbeatRequestSchema, body);
  } catch (e) {
    return fail(new ConnectError(`cannot read the request: ${String(e)}`, Code.InvalidArgument));
  }
  try {
    const answer = answerHeartbeat(deps.service, req);
    answerUnary(stream, toBinary(HeartbeatResponseSchema, create(HeartbeatResponseSchema, answer)));
    return "OK";
  } catch (e) {
    return fail(e);
  }
}
