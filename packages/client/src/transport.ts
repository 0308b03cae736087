import { createRequire, syncBuiltinESMExports } from "node:module";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { AgentService, MasterService } from "@sloth/proto";
import { formatHostPort, parseHostPort } from "./address.js";
import { bearerInterceptor } from "./auth.js";
import { withLeanServerStreams } from "./lean-stream.js";

/** TLS material for a connection, as PEM text or buffers. */
export interface TlsMaterial {
  /** Certificate authority to verify the peer; omit to use the system store. */
  ca?: string | Buffer;
  /** This process's certificate, presented as client certificate. */
  cert?: string | Buffer;
  key?: string | Buffer;
}

/** Options for {@link connect}. */
export interface ConnectOptions {
  /** `HOST:PORT` of the master or agent. */
  address: string;
  /** The cluster token; omitted only for Health checks. */
  token?: string | undefined;
  /** Dial with TLS when given. */
  tls?: TlsMaterial | undefined;
  /** Ping an idle connection after this many ms (default 10 s). */
  pingIntervalMs?: number;
}

/**
 * One HTTP/2 connection to a master or agent. Close it when done: an open
 * session keeps the process (and a server's `close()`) waiting.
 */
export interface SlothConnection extends AsyncDisposable {
  readonly address: string;
  readonly transport: Transport;
  /** The HTTP/2 session under the transport, for raw streams on the same connection. */
  readonly sessionManager: Http2SessionManager;
  /** Closes the HTTP/2 session; in-flight calls fail. */
  close(): void;
}

// A client HTTP/2 session can emit 'error' once more as it closes, after
// Connect's session manager has stopped listening (a peer that answers
// HTTP/1.1, say): with no listener left, that error would crash the process
// after the call had already failed cleanly. Every client session gets a
// listener that ignores such late errors; Connect's own still handle the rest.
let guarded = false;
function guardSessions(): void {
  if (guarded) return;
  guarded = true;
  const h2 = createRequire(import.meta.url)("node:http2") as typeof import("node:http2");
  const open = h2.connect;
  h2.connect = ((...args: Parameters<typeof open>) => {
    const session = open(...args);
    session.on("error", () => {});
    return session;
  }) as typeof open;
  syncBuiltinESMExports();
}

/** Opens a connection (lazily: nothing is dialled until the first call). */
export function connect(options: ConnectOptions): SlothConnection {
  guardSessions();
  const { host, port } = parseHostPort(options.address);
  const scheme = options.tls ? "https" : "http";
  const baseUrl = `${scheme}://${formatHostPort(host, port)}`;
  const nodeOptions = options.tls
    ? { ca: options.tls.ca, cert: options.tls.cert, key: options.tls.key }
    : {};
  const sessionManager = new Http2SessionManager(
    baseUrl,
    {
      pingIntervalMs: options.pingIntervalMs ?? 10_000,
      pingTimeoutMs: 10_000,
      idleConnectionTimeoutMs: 60_000,
    },
    nodeOptions,
  );
  const transport = withLeanServerStreams(
    createConnectTransport({
      baseUrl,
      httpVersion: "2",
      useBinaryFormat: true,
      sessionManager,
      interceptors: options.token ? [bearerInterceptor(options.token)] : [],
    }),
    { sessionManager, baseUrl, token: options.token },
  );
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    sessionManager.abort();
  };
  return {
    address: options.address,
    transport,
    sessionManager,
    close,
    [Symbol.asyncDispose]: async () => close(),
  };
}

/** A typed client of the master service on a connection. */
export function masterClient(conn: SlothConnection): Client<typeof MasterService> {
  return createClient(MasterService, conn.transport);
}

/** A typed client of the agent service on a connection. */
export function agentClient(conn: SlothConnection): Client<typeof AgentService> {
  return createClient(AgentService, conn.transport);
}
