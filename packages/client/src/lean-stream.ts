// Server-streaming calls on an open HTTP/2 connection without the generic
// Connect client machinery: one request frame out, response frames parsed
// and decoded as they arrive. Dispatching a trivial command is a few
// hundred microseconds of client CPU this way, where the generic path
// (async-iterable pipelines, header conversions, linked abort controllers)
// costs several times that. Connecting, unary calls and every other kind
// of call stay with the Connect transport, and so do calls made while the
// connection is not up (its errors say why a master cannot be reached).
import http2 from "node:http2";
import {
  create,
  type DescMessage,
  type DescMethodStreaming,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  type StreamResponse,
  type Transport,
} from "@connectrpc/connect";
import {
  codeFromHttpStatus,
  endStreamFromJson,
  errorFromJsonBytes,
} from "@connectrpc/connect/protocol-connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";

/** What Transport methods take as request headers. */
type HeaderInit = ConstructorParameters<typeof Headers>[0];

const CONTENT_TYPE = "application/connect+proto";
const FLAG_COMPRESSED = 0b01;
const FLAG_END_STREAM = 0b10;
// A message larger than this is refused rather than buffered.
const READ_MAX_BYTES = 64 * 1024 * 1024;
// Decoded messages held for a slow consumer before the stream is paused.
const QUEUE_MAX = 32;

/** Where lean calls go and what they carry. */
export interface LeanStreamOptions {
  sessionManager: Http2SessionManager;
  /** The transport's base URL (its path, if any, prefixes every method). */
  baseUrl: string;
  /** Sent as `authorization: Bearer TOKEN`, as the transport's interceptor does. */
  token?: string | undefined;
}

/**
 * Wraps a Connect transport (binary format, HTTP/2, `sessionManager` its
 * session) so server-streaming calls on an established connection take the
 * lean path. Behaviour is that of the Connect protocol: same headers,
 * deadline (`connect-timeout-ms`), cancellation (RST_STREAM CANCEL), errors
 * as ConnectError with the server's code, message and metadata.
 */
export function withLeanServerStreams(base: Transport, options: LeanStreamOptions): Transport {
  const prefix = new URL(options.baseUrl).pathname.replace(/\/+$/, "");
  return {
    unary: base.unary.bind(base),
    stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeaderInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      const state = options.sessionManager.state();
      if (
        method.methodKind !== "server_streaming" ||
        (state !== "open" && state !== "idle") ||
        signal?.aborted
      )
        return base.stream(method, signal, timeoutMs, header, input, contextValues);
      return leanCall(options, `${prefix}/${method.parent.typeName}/${method.name}`, method, {
        signal,
        timeoutMs,
        header,
        input,
      });
    },
  };
}

interface Call<I extends DescMessage> {
  signal: AbortSignal | undefined;
  timeoutMs: number | undefined;
  header: HeaderInit | undefined;
  input: AsyncIterable<MessageInitShape<I>>;
}

async function leanCall<I extends DescMessage, O extends DescMessage>(
  options: LeanStreamOptions,
  path: string,
  method: DescMethodStreaming<I, O>,
  call: Call<I>,
): Promise<StreamResponse<I, O>> {
  let init: MessageInitShape<I> | undefined;
  for await (const m of call.input) {
    init = m;
    break;
  }
  if (init === undefined)
    throw new ConnectError("protocol error: missing request message", Code.InvalidArgument);
  const body = toBinary(method.input, create(method.input, init));
  const frame = Buffer.allocUnsafe(5 + body.length);
  frame[0] = 0;
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);

  const headers: http2.OutgoingHttpHeaders = {};
  if (call.header) for (const [k, v] of new Headers(call.header)) headers[k] = v;
  headers["content-type"] = CONTENT_TYPE;
  headers["connect-protocol-version"] = "1";
  if (call.timeoutMs !== undefined)
    headers["connect-timeout-ms"] = String(Math.max(0, Math.ceil(call.timeoutMs)));
  if (options.token) headers.authorization = `Bearer ${options.token}`;

  let stream: http2.ClientHttp2Stream;
  try {
    stream = await options.sessionManager.request("POST", path, headers, {});
  } catch (e) {
    throw fromNodeError(e);
  }
  const reader = new FrameReader(method, stream, options.sessionManager, call);
  stream.end(frame);
  const responseHeader = await reader.headers;
  return {
    stream: true,
    service: method.parent,
    method,
    header: responseHeader,
    trailer: reader.trailer,
    message: reader,
  } as unknown as StreamResponse<I, O>;
}

/** Parses response frames into decoded messages; an async iterable of them. */
class FrameReader<O extends DescMessage> implements AsyncIterable<MessageShape<O>> {
  readonly headers: Promise<Headers>;
  readonly trailer = new Headers();
  private readonly queue: MessageShape<O>[] = [];
  private waiter: (() => void) | undefined;
  // Received bytes not yet parsed, and the frame being read (need < 0: its header).
  private readonly parts: Buffer[] = [];
  private have = 0;
  private need = -1;
  private flags = 0;
  private ended = false;
  private failure: ConnectError | undefined;
  private gotEnd = false;
  private status = 0;
  private errorBody: Buffer[] | undefined;
  private timer: NodeJS.Timeout | undefined;
  private resolveHeaders!: (h: Headers) => void;
  private rejectHeaders!: (e: unknown) => void;
  private headersDone = false;
  private readonly onAbort: () => void;

  constructor(
    private readonly method: DescMethodStreaming<DescMessage, O>,
    private readonly stream: http2.ClientHttp2Stream,
    private readonly manager: Http2SessionManager,
    private readonly call: Call<DescMessage>,
  ) {
    this.headers = new Promise<Headers>((resolve, reject) => {
      this.resolveHeaders = resolve;
      this.rejectHeaders = reject;
    });
    this.headers.catch(() => {});
    this.onAbort = () =>
      this.fail(ConnectError.from(call.signal?.reason ?? "operation aborted", Code.Canceled), true);
    call.signal?.addEventListener("abort", this.onAbort, { once: true });
    if (call.timeoutMs !== undefined)
      this.timer = setTimeout(
        () => this.fail(new ConnectError("the operation timed out", Code.DeadlineExceeded), true),
        call.timeoutMs,
      );
    stream.on("response", (h) => this.onResponse(h));
    stream.on("data", (c: Buffer) => this.onData(c));
    stream.on("end", () => this.onEnd());
    stream.on("error", (e) => {
      const code = (e as NodeJS.ErrnoException).code;
      if (stream.writableEnded && code === "ERR_STREAM_WRITE_AFTER_END") return;
      this.fail(fromNodeError(e), false);
    });
    stream.on("close", () => this.onClose());
    // Aborted while the stream was being opened: the listener came too late.
    if (call.signal?.aborted) this.onAbort();
  }

  [Symbol.asyncIterator](): AsyncIterator<MessageShape<O>> {
    return {
      next: async () => {
        for (;;) {
          const m = this.queue.shift();
          if (m !== undefined) {
            if (this.queue.length < QUEUE_MAX / 2 && this.stream.isPaused()) this.stream.resume();
            return { done: false, value: m };
          }
          if (this.failure) throw this.failure;
          if (this.ended) return { done: true, value: undefined };
          await new Promise<void>((r) => (this.waiter = r));
        }
      },
      return: async () => {
        // The caller stopped reading: the server is told to stop.
        if (!this.ended && !this.failure)
          this.fail(new ConnectError("cancelled", Code.Canceled), true);
        this.queue.length = 0;
        return { done: true, value: undefined };
      },
    };
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private onResponse(h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): void {
    this.status = h[":status"] ?? 0;
    const headers = new Headers();
    for (const [k, v] of Object.entries(h)) {
      if (k.startsWith(":") || v === undefined) continue;
      if (Array.isArray(v)) for (const x of v) headers.append(k, x);
      else headers.set(k, String(v));
    }
    if (this.status !== 200) {
      // An error before any stream: the body is a JSON error.
      this.errorBody = [];
      this.settleHeaders(headers);
      return;
    }
    const type = headers.get("content-type") ?? "";
    if (type !== CONTENT_TYPE && !type.startsWith(`${CONTENT_TYPE};`)) {
      this.fail(new ConnectError(`unsupported content type ${type}`, Code.Internal), true);
      return;
    }
    this.settleHeaders(headers);
  }

  private settleHeaders(h: Headers): void {
    if (this.headersDone) return;
    this.headersDone = true;
    this.resolveHeaders(h);
  }

  private onData(chunk: Buffer): void {
    this.manager.notifyResponseByteRead(this.stream);
    if (this.failure || this.ended) return;
    if (this.errorBody) {
      this.errorBody.push(chunk);
      return;
    }
    this.parts.push(chunk);
    this.have += chunk.length;
    try {
      for (;;) {
        if (this.need < 0) {
          if (this.have < 5) break;
          const head = this.take(5);
          this.flags = head[0] as number;
          this.need = head.readUInt32BE(1);
          if (this.need > READ_MAX_BYTES)
            throw new ConnectError(
              `message size ${this.need} is larger than configured readMaxBytes ${READ_MAX_BYTES}`,
              Code.ResourceExhausted,
            );
        }
        if (this.have < this.need) break;
        const payload = this.take(this.need);
        this.need = -1;
        this.onFrame(this.flags, payload);
      }
    } catch (e) {
      this.fail(ConnectError.from(e, Code.Internal), true);
      return;
    }
    if (this.queue.length >= QUEUE_MAX && !this.stream.isPaused()) this.stream.pause();
    this.wake();
  }

  /**
   * The next `n` received bytes: a view when one chunk holds them, else one
   * copy (a message spanning many chunks is joined once, not per chunk).
   * Chunks are never reused by the stream, so views stay valid.
   */
  private take(n: number): Buffer {
    this.have -= n;
    const first = this.parts[0] as Buffer;
    if (first.length >= n) {
      if (first.length === n) this.parts.shift();
      else this.parts[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const p = this.parts[0] as Buffer;
      const k = Math.min(p.length, n - at);
      p.copy(out, at, 0, k);
      at += k;
      if (k === p.length) this.parts.shift();
      else this.parts[0] = p.subarray(k);
    }
    return out;
  }

  private onFrame(flags: number, payload: Buffer): void {
    if (flags & FLAG_COMPRESSED)
      throw new ConnectError(
        "protocol error: received compressed message but no compression was negotiated",
        Code.Internal,
      );
    if (this.gotEnd)
      throw new ConnectError(
        "protocol error: received extra message after EndStreamResponse",
        Code.InvalidArgument,
      );
    if (flags & FLAG_END_STREAM) {
      this.gotEnd = true;
      const end = endStreamFromJson(payload);
      for (const [k, v] of end.metadata) this.trailer.append(k, v);
      if (end.error) throw end.error;
      return;
    }
    // Bytes fields come out as Buffers viewing the frame, as from the Connect transport.
    this.queue.push(fromBinary(this.method.output, payload));
  }

  private onEnd(): void {
    if (this.failure || this.ended) return;
    if (this.errorBody) {
      const body = Buffer.concat(this.errorBody);
      const fallback = new ConnectError(`HTTP ${this.status}`, codeFromHttpStatus(this.status));
      let err: ConnectError;
      try {
        err = errorFromJsonBytes(body, undefined, fallback);
      } catch {
        err = fallback;
      }
      this.fail(err, false);
      return;
    }
    if (!this.gotEnd || this.have > 0 || this.need >= 0) {
      // A server always ends with its end-of-stream message: the peer or the
      // link went away mid-call (a killed master, a dropped connection).
      this.fail(
        new ConnectError("the connection was lost before the call ended", Code.Unavailable),
        false,
      );
      return;
    }
    this.ended = true;
    this.cleanup();
    this.wake();
  }

  private onClose(): void {
    if (this.failure || this.ended) return;
    const code = this.stream.rstCode;
    this.fail(
      code !== undefined && code !== http2.constants.NGHTTP2_NO_ERROR
        ? fromResetCode(code)
        : new ConnectError("http/2 stream closed before the response ended", Code.Unavailable),
      false,
    );
  }

  private fail(e: ConnectError, reset: boolean): void {
    if (this.failure || this.ended) return;
    this.failure = e;
    this.cleanup();
    if (reset && !this.stream.closed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
    if (!this.headersDone) {
      this.headersDone = true;
      this.rejectHeaders(e);
    }
    this.wake();
  }

  private cleanup(): void {
    if (this.timer) clearTimeout(this.timer);
    this.call.signal?.removeEventListener("abort", this.onAbort);
  }
}

const RESET_CODES: Record<number, [string, Code]> = {
  1: ["PROTOCOL_ERROR", Code.Internal],
  2: ["INTERNAL_ERROR", Code.Internal],
  3: ["FLOW_CONTROL_ERROR", Code.Internal],
  4: ["SETTINGS_TIMEOUT", Code.Internal],
  5: ["STREAM_CLOSED", Code.Internal],
  6: ["FRAME_SIZE_ERROR", Code.Internal],
  7: ["REFUSED_STREAM", Code.Unavailable],
  8: ["CANCEL", Code.Canceled],
  9: ["COMPRESSION_ERROR", Code.Internal],
  10: ["CONNECT_ERROR", Code.Internal],
  11: ["ENHANCE_YOUR_CALM", Code.ResourceExhausted],
  12: ["INADEQUATE_SECURITY", Code.PermissionDenied],
  13: ["HTTP_1_1_REQUIRED", Code.PermissionDenied],
};

function fromResetCode(rst: number): ConnectError {
  const [name, code] = RESET_CODES[rst] ?? ["UNKNOWN", Code.Internal];
  return new ConnectError(
    `http/2 stream closed with error code ${name} (0x${rst.toString(16)})`,
    code,
  );
}

/** A Node error as a ConnectError, coded as the Connect transport codes it. */
function fromNodeError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  const codes: string[] = [];
  for (let x: unknown = e, i = 0; x instanceof Error && i < 8; x = x.cause, i++) {
    const c = (x as NodeJS.ErrnoException).code;
    if (typeof c === "string") codes.push(c);
  }
  let code = Code.Internal;
  if (
    codes.some((c) =>
      [
        "ERR_STREAM_WRITE_AFTER_END",
        "ERR_STREAM_DESTROYED",
        "ERR_HTTP2_INVALID_STREAM",
        "ECONNRESET",
      ].includes(c),
    )
  )
    code = Code.Aborted;
  else if (codes.some((c) => ["ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED"].includes(c)))
    code = Code.Unavailable;
  const ce = ConnectError.from(e, code);
  if (ce !== e) ce.cause = e;
  return ce;
}
