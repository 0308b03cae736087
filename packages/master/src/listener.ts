import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { closeIfSilent, MAX_STREAMS_PER_SESSION } from "@sloth/client";

type Handler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** A server accepting HTTP/2 (h2c, for gRPC and Connect) and HTTP/1.1 on one port. */
export interface DualServer {
  server: net.Server;
  /** Closes every open connection now. */
  destroyConnections(): void;
  /** Asks HTTP/2 sessions to finish their streams and close; resolves when they have (or after `waitMs`). */
  closeSessions(waitMs: number): Promise<void>;
}

const PREFACE = "PRI";

/** How long a new connection may stay silent before it is closed. */
export const SILENT_CONNECTION_MS = 30_000;

/**
 * Serves `handler` over cleartext HTTP/2 and HTTP/1.1 on the same port: the
 * first bytes of a connection tell the HTTP/2 preface from an HTTP/1.1
 * request line. gRPC clients get h2c; curl and Prometheus get HTTP/1.1.
 */
export function createDualServer(
  handler: Handler,
  silentMs: number = SILENT_CONNECTION_MS,
): DualServer {
  const h2 = http2.createServer(
    { settings: { maxConcurrentStreams: MAX_STREAMS_PER_SESSION } },
    handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  );
  const h1 = http.createServer(handler as http.RequestListener);
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
    closeIfSilent(s, silentMs);
  });
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // A connection that says nothing is not a client: it would hold a
    // descriptor for ever (HTTP/1.1's own timeouts start with a request).
    const silent = setTimeout(() => socket.destroy(), silentMs);
    silent.unref();
    socket.once("close", () => clearTimeout(silent));
    socket.once("data", (chunk: Buffer) => {
      clearTimeout(silent);
      socket.pause();
      socket.unshift(chunk);
      // The HTTP/2 session takes over the socket's handle and reads the
      // unshifted bytes itself; only HTTP/1.1 needs the stream resumed.
      if (chunk.toString("latin1", 0, PREFACE.length) === PREFACE) {
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
        socket.resume();
      }
    });
  });
  return {
    server,
    destroyConnections() {
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
    },
    async closeSessions(waitMs) {
      h1.closeIdleConnections();
      const open = [...sessions].map(
        (s) => new Promise<void>((resolve) => s.close(() => resolve())),
      );
      // The timer is cleared when the sessions close first: it must not keep the process up.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(open),
        new Promise((r) => {
          timer = setTimeout(r, waitMs);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}
