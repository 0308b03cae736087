import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  closeIfSilent,
  MAX_STREAMS_PER_SESSION,
  SlothError,
  tokenTieredHandler,
  withSpecGrpcMessages,
} from "@sloth/client";
import { PortInUseError } from "./errors.js";

/** A listening h2c server and how to close it. */
export interface RpcServer {
  port: number;
  /**
   * Stops accepting, asks clients to go away (GOAWAY), and destroys the
   * sessions still open after `forceAfterMs`: a client's idle HTTP/2 session
   * would otherwise keep `close()` waiting forever.
   */
  close(forceAfterMs: number): Promise<void>;
}

/**
 * Serves Connect, gRPC and gRPC-Web over cleartext HTTP/2 (h2c) on
 * `host:port` (port 0 picks a free one).
 */
export async function listenRpc(
  routes: (router: ConnectRouter) => void,
  interceptors: Interceptor[],
  /** The cluster token: callers without it get small request limits. */
  token: string,
  host: string,
  port: number,
  tls?: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer | undefined },
  /** Takes over the requests it serves by hand (returns true); the rest go to Connect. */
  fast?: (req: unknown) => boolean,
): Promise<RpcServer> {
  const connectHandler = withSpecGrpcMessages(
    // A caller without the token gets its request read only up to a few
    // KiB (Connect reads it before the token check runs).
    tokenTieredHandler(token, (readMaxBytes) =>
      connectNodeAdapter({
        routes,
        interceptors,
        readMaxBytes,
        // Never compress responses: command output streams at pipe speed, and
        // gzip costs far more CPU than it saves on the links agents use.
        // Compressed requests are still accepted.
        compressMinBytes: Number.MAX_SAFE_INTEGER,
      }),
    ),
  );
  const handler: typeof connectHandler = (req, res) => {
    if (!fast?.(req)) connectHandler(req, res);
  };
  const server: http2.Http2Server | http2.Http2SecureServer = tls
    ? http2.createSecureServer(
        {
          cert: tls.cert,
          key: tls.key,
          ca: tls.ca,
          // With a CA, callers must present a certificate it signed (mTLS).
          requestCert: tls.ca !== undefined,
          rejectUnauthorized: tls.ca !== undefined,
          allowHTTP1: true,
          settings: { maxConcurrentStreams: MAX_STREAMS_PER_SESSION },
        },
        handler,
      )
    : http2.createServer({ settings: { maxConcurrentStreams: MAX_STREAMS_PER_SESSION } }, handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    // A connection that never sends a request holds a descriptor for nothing.
    closeIfSilent(session);
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE") reject(new PortInUseError(port, err));
      else if (err.code === "EADDRNOTAVAIL") {
        reject(
          new SlothError(
            "SLOTH_INVALID_ADDRESS",
            `cannot listen on ${host}: no such local address`,
            {
              cause: err,
              hint: "choose an address of this host with --bind-address, or 0.0.0.0",
            },
          ),
        );
      } else
        reject(
          new SlothError(
            "SLOTH_INVALID_ARGUMENT",
            `cannot listen on ${host}:${port}: ${err.message}`,
            { cause: err },
          ),
        );
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const actualPort = (server.address() as AddressInfo).port;
  return {
    port: actualPort,
    close(forceAfterMs) {
      return new Promise((resolve) => {
        server.close(() => resolve());
        for (const s of sessions) s.close();
        const timer = setTimeout(() => {
          for (const s of sessions) s.destroy();
        }, forceAfterMs);
        timer.unref();
      });
    },
  };
}
