import type http from "node:http";
import type http2 from "node:http2";

/**
 * The `grpc-message` of a gRPC response is percent-encoded. The gRPC spec
 * escapes only the bytes outside 0x20–0x7E and `%`; Connect's server escapes
 * like `encodeURIComponent`, so ':', '/', ',' and spaces travel as %3A, %2F,
 * %2C and %20. Clients that follow the spec decode both, but grpc-js decodes
 * with `decodeURI`, which leaves %3A, %2F and %2C in the message a user
 * reads. Rewriting the value to the spec's form reads correctly everywhere.
 */
export function specGrpcMessage(value: string): string {
  let text: string;
  try {
    text = decodeURIComponent(value);
  } catch {
    // Not something Connect wrote: leave it alone.
    return value;
  }
  let out = "";
  for (const b of Buffer.from(text, "utf8")) {
    out +=
      b >= 0x20 && b <= 0x7e && b !== 0x25
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

type Handler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

type HeaderBag = Record<string, string | string[] | number | undefined>;

function fix(headers: unknown): void {
  if (headers === null || typeof headers !== "object" || Array.isArray(headers)) return;
  const bag = headers as HeaderBag;
  const v = bag["grpc-message"];
  if (typeof v === "string") bag["grpc-message"] = specGrpcMessage(v);
}

/**
 * Wraps a Connect node handler so that its gRPC responses carry
 * `grpc-message` encoded as the gRPC spec says (see {@link specGrpcMessage}),
 * in trailers and in trailers-only responses. Other protocols pass through
 * untouched.
 */
export function withSpecGrpcMessages<H extends Handler>(handler: H): H {
  const wrapped = ((req, res) => {
    const type = req.headers["content-type"];
    if (
      typeof type === "string" &&
      type.startsWith("application/grpc") &&
      !type.startsWith("application/grpc-web")
    ) {
      const r = res as http2.Http2ServerResponse;
      const writeHead = r.writeHead;
      const addTrailers = r.addTrailers;
      r.writeHead = function (this: http2.Http2ServerResponse, ...args: unknown[]) {
        // writeHead(status, headers) or writeHead(status, reason, headers).
        fix(args[args.length - 1]);
        return (writeHead as (...a: unknown[]) => http2.Http2ServerResponse).apply(this, args);
      } as typeof r.writeHead;
      r.addTrailers = function (this: http2.Http2ServerResponse, trailers) {
        fix(trailers);
        return addTrailers.call(this, trailers);
      };
    }
    handler(req, res);
  }) as H;
  return wrapped;
}
