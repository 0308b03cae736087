import type http from "node:http";
import type http2 from "node:http2";
import { secretsEqual } from "../token.js";

/**
 * The largest request message (after decompression) served to a caller
 * without the cluster token: public methods such as Health take an empty
 * one. Connect reads and decompresses a request before interceptors run, so
 * this bound, not the token check, is what limits an unauthenticated
 * caller's cost: a 1.7 KB brotli body would otherwise expand to gigabytes.
 */
export const UNTRUSTED_READ_MAX_BYTES = 64 * 1024;

/**
 * The largest request message from a caller holding the token: workspace
 * manifests of large trees are the biggest (about 100 bytes per file).
 */
export const TRUSTED_READ_MAX_BYTES = 1024 * 1024 * 1024;

type NodeHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/**
 * True when the request's `authorization` header carries `token` as its
 * bearer token (compared in constant time). Reads headers only.
 */
export function hasBearerToken(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  token: string,
): boolean {
  const h = headers.authorization;
  if (typeof h !== "string") return false;
  const m = /^Bearer\s+(.+)$/i.exec(h.trim());
  return Boolean(m?.[1] && secretsEqual(m[1], token));
}

/**
 * Serves Connect routes in two tiers: callers presenting the cluster token
 * go to a handler reading messages up to {@link TRUSTED_READ_MAX_BYTES};
 * everyone else to one reading at most {@link UNTRUSTED_READ_MAX_BYTES},
 * whose interceptors (the token check) then refuse all but the public
 * methods. `makeAdapter` builds a Connect node adapter for a given
 * `readMaxBytes` (the same routes, interceptors and options otherwise).
 */
export function tokenTieredHandler<H extends NodeHandler>(
  token: string,
  makeAdapter: (readMaxBytes: number) => H,
): H {
  const trusted = makeAdapter(TRUSTED_READ_MAX_BYTES);
  const untrusted = makeAdapter(UNTRUSTED_READ_MAX_BYTES);
  return ((req, res) =>
    hasBearerToken(req.headers, token) ? trusted(req, res) : untrusted(req, res)) as H;
}

/**
 * For servers that cannot tier their Connect handler (a framework plugin):
 * true when a request may reach it, that is when it carries the token, or
 * calls one of `publicMethods` (a bare name such as "Health", or a full path
 * such as "/grpc.health.v1.Health/Check") uncompressed. Check it
 * before the body is read (fastify: an `onRequest` hook), and answer 401
 * otherwise.
 */
export function requestAllowed(
  req: {
    url?: string | undefined;
    headers: Readonly<Record<string, string | string[] | undefined>>;
  },
  token: string,
  publicMethods: readonly string[] = ["Health"],
): boolean {
  if (hasBearerToken(req.headers, token)) return true;
  const url = (req.url ?? "").split("?")[0] ?? "";
  const method = url.split("/").pop() ?? "";
  if (!publicMethods.includes(method) && !publicMethods.includes(url)) return false;
  const h = req.headers;
  for (const name of ["content-encoding", "connect-content-encoding", "grpc-encoding"]) {
    const v = h[name];
    if (v !== undefined && v !== "identity") return false;
  }
  return true;
}

/**
 * Streams one HTTP/2 session may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS):
 * clients queue calls past it, and a caller holding streams open (health
 * `Watch` needs no token) is bounded per connection.
 */
export const MAX_STREAMS_PER_SESSION = 1000;

/** How long an HTTP/2 session may go without its first request. */
export const FIRST_REQUEST_TIMEOUT_MS = 30_000;

/**
 * Closes an HTTP/2 session that sends no request within `ms` of opening: a
 * connection that never asks anything is not a client, and would hold a
 * descriptor (and session memory) for ever. Clients connect when they have
 * a call to make, so this never cuts one short.
 */
export function closeIfSilent(
  session: import("node:http2").ServerHttp2Session,
  ms = FIRST_REQUEST_TIMEOUT_MS,
): void {
  const timer = setTimeout(() => session.destroy(), ms);
  timer.unref();
  const clear = () => clearTimeout(timer);
  session.once("stream", clear);
  session.once("close", clear);
}

/** What {@link answerMetrics} needs of a Prometheus registry (prom-client's `Registry`). */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

/**
 * Answers `GET /metrics` (with or without a query) with the registry's text
 * and returns true; anything else is left to the caller (false). A registry
 * that fails answers 500 instead of leaving the request hanging.
 */
export function answerMetrics(
  req: { method?: string | undefined; url?: string | undefined },
  res: {
    writeHead(status: number, headers: Record<string, string>): unknown;
    end(text: string): unknown;
  },
  source: MetricsSource,
): boolean {
  if (req.method !== "GET" || req.url?.split("?")[0] !== "/metrics") return false;
  source.metrics().then(
    (text) => {
      res.writeHead(200, { "content-type": source.contentType });
      res.end(text);
    },
    (e: unknown) => {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(`cannot collect metrics: ${e instanceof Error ? e.message : String(e)}\n`);
    },
  );
  return true;
}
