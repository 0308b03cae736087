import type http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  endStreamFlag,
  endStreamToJson,
  errorToJson,
} from "@connectrpc/connect/protocol-connect";
import { secretsEqual } from "../token.js";

/**
 * Helpers for serving one hot server-streaming method by hand, next to a
 * Connect handler: the Connect protocol with binary messages over HTTP/2,
 * which is what `@sloth/client` sends. Anything else is left to the handler.
 */

/** The content type of a Connect streaming call with binary messages. */
export const CONNECT_STREAM_PROTO = "application/connect+proto";

/**
 * True when `req` is an uncompressed Connect binary streaming call to `path`
 * over HTTP/2 carrying `token` as its bearer token: one a server may answer
 * by hand. Reads headers only.
 */
export function isPlainConnectCall(req: unknown, path: string, token: string): boolean {
  const r = req as http2.Http2ServerRequest;
  if (r.httpVersionMajor !== 2 || r.method !== "POST" || r.url !== path) return false;
  const h = r.headers;
  if (h["content-type"] !== CONNECT_STREAM_PROTO) return false;
  const encoding = h["connect-content-encoding"];
  if (encoding !== undefined && encoding !== "identity") return false;
  const m = h.authorization ? /^Bearer\s+(.+)$/i.exec(h.authorization.trim()) : null;
  return Boolean(m?.[1] && secretsEqual(m[1], token));
}

/**
 * Reads the one enveloped request message of a streaming call: its bytes, a
 * ConnectError for a malformed or oversized request, or undefined when the
 * caller went away first.
 */
export async function readConnectRequest(
  stream: http2.ServerHttp2Stream,
  maxBytes = 4 << 20,
): Promise<Uint8Array | ConnectError | undefined> {
  const all = await readBody(stream, maxBytes + 5);
  if (all === undefined || all instanceof ConnectError) return all;
  if (all.length < 5 || all[0] !== 0 || all.readUInt32BE(1) !== all.length - 5)
    return new ConnectError(
      "protocol error: expected one uncompressed message",
      Code.InvalidArgument,
    );
  return all.subarray(5);
}

/** The content type of a Connect unary call with a binary message. */
export const CONNECT_UNARY_PROTO = "application/proto";

/**
 * True when `req` is an uncompressed Connect unary call with a binary
 * message to `path` over HTTP/2, carrying `token` as its bearer token and
 * well-formed Connect headers: one a server may answer by hand with
 * {@link readUnaryRequest}, {@link answerUnary} and {@link answerUnaryError}.
 * Reads headers only; anything unusual is left to the Connect handler.
 */
export function isPlainConnectUnary(req: unknown, path: string, token: string): boolean {
  const r = req as http2.Http2ServerRequest;
  if (r.httpVersionMajor !== 2 || r.method !== "POST" || r.url !== path) return false;
  const h = r.headers;
  if (h["content-type"] !== CONNECT_UNARY_PROTO) return false;
  const encoding = h["content-encoding"];
  if (encoding !== undefined && encoding !== "identity") return false;
  const version = h["connect-protocol-version"];
  if (version !== undefined && version !== "1") return false;
  const timeout = h["connect-timeout-ms"];
  if (timeout !== undefined && !/^[0-9]{1,10}$/.test(String(timeout))) return false;
  const m = h.authorization ? /^Bearer\s+(.+)$/i.exec(h.authorization.trim()) : null;
  return Boolean(m?.[1] && secretsEqual(m[1], token));
}

/**
 * Reads the request message of a unary call: its bytes, a ConnectError for
 * an oversized request, or undefined when the caller went away first.
 */
export function readUnaryRequest(
  stream: http2.ServerHttp2Stream,
  maxBytes = 4 << 20,
): Promise<Uint8Array | ConnectError | undefined> {
  return readBody(stream, maxBytes);
}

/** Answers a unary call with its response message. */
export function answerUnary(stream: http2.ServerHttp2Stream, message: Uint8Array): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({
    ":status": 200,
    "content-type": CONNECT_UNARY_PROTO,
    "content-length": message.byteLength,
  });
  stream.end(message);
}

/**
 * Answers a unary call with an error, as the Connect protocol has it: the
 * status for its code, its JSON, and its metadata as response headers.
 */
export function answerUnaryError(stream: http2.ServerHttp2Stream, error: ConnectError): void {
  if (stream.destroyed || stream.headersSent) return;
  const body = Buffer.from(JSON.stringify(errorToJson(error, undefined)));
  const headers: http2.OutgoingHttpHeaders = {};
  error.metadata.forEach((value, key) => {
    if (!key.startsWith(":") && key !== "content-type" && key !== "content-length")
      headers[key] = value;
  });
  stream.respond({
    ...headers,
    ":status": codeToHttpStatus(error.code),
    "content-type": "application/json",
    "content-length": body.byteLength,
  });
  stream.end(body);
}

/** The whole request body, a ConnectError past `maxBytes`, or undefined when the caller left. */
function readBody(
  stream: http2.ServerHttp2Stream,
  maxBytes: number,
): Promise<Buffer | ConnectError | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("close", onClose);
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        cleanup();
        resolve(new ConnectError("request too large", Code.ResourceExhausted));
        return;
      }
      chunks.push(c);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    };
    const onClose = () => {
      cleanup();
      resolve(undefined);
    };
    stream.on("data", onData);
    stream.once("end", onEnd);
    stream.once("close", onClose);
  });
}

/** A message frame of a Connect stream. */
export function messageFrame(bytes: Uint8Array): Uint8Array {
  return encodeEnvelope(0, bytes);
}

/** The end-of-stream frame of a Connect stream: success, or `error`. */
export function endStreamFrame(error?: ConnectError): Uint8Array {
  const json = endStreamToJson(new Headers(), error, undefined);
  return encodeEnvelope(endStreamFlag, new TextEncoder().encode(JSON.stringify(json)));
}
