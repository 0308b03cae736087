import type http2 from "node:http2";
import type { Client } from "@connectrpc/connect";
import { agentClient, connect, type SlothConnection, type TlsMaterial } from "@sloth/client";
import type { AgentService } from "@sloth/proto";

/**
 * Reuses one HTTP/2 connection per agent address, so dispatch pays no
 * handshake. Connections are closed when the agent leaves or the master stops.
 */
export class AgentPool {
  readonly #conns = new Map<string, SlothConnection>();
  readonly #token: string;
  readonly #tls: TlsMaterial | undefined;

  constructor(token: string, tls?: TlsMaterial) {
    this.#token = token;
    this.#tls = tls;
  }

  /** A client for the agent at `address`, dialled with TLS when `tls` is set. */
  client(address: string, tls = false): Client<typeof AgentService> {
    return agentClient(this.#conn(address, tls));
  }

  /**
   * A raw HTTP/2 stream to the agent at `address` on the same connection as
   * {@link client}; `read()` must be called for each chunk read from it.
   */
  async stream(
    address: string,
    tls: boolean,
    path: string,
    headers: http2.OutgoingHttpHeaders,
  ): Promise<{ stream: http2.ClientHttp2Stream; read: () => void }> {
    const manager = this.#conn(address, tls).sessionManager;
    const stream = await manager.request("POST", path, headers, {});
    return { stream, read: () => manager.notifyResponseByteRead(stream) };
  }

  /** The token this pool presents to agents. */
  get token(): string {
    return this.#token;
  }

  #conn(address: string, tls: boolean): SlothConnection {
    let conn = this.#conns.get(address);
    if (!conn) {
      conn = connect({ address, token: this.#token, tls: tls ? (this.#tls ?? {}) : undefined });
      this.#conns.set(address, conn);
    }
    return conn;
  }

  /** Closes the connection to `address`, if any. */
  drop(address: string): void {
    this.#conns.get(address)?.close();
    this.#conns.delete(address);
  }

  closeAll(): void {
    for (const c of this.#conns.values()) c.close();
    this.#conns.clear();
  }
}
