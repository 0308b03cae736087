import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  agentClient,
  connect,
  explainClosedConnection,
  fromConnectError,
  type SlothConnection,
  type SlothError,
  type TlsMaterial,
} from "@sloth/client";
import type {
  MasterService,
  PrepareWorkspaceResponse,
  RunTaskRequestSchema,
  RunTaskResponse,
} from "@sloth/proto";

/** What an agent answered PrepareWorkspace. */
export interface Prepared {
  /** The blobs its cache lacks, to upload. */
  missing: string[];
  /** It takes small blobs bundled several to a tar entry. */
  bundles: boolean;
}

/** The delegation calls to one agent, through the master or dialled directly. */
export interface TaskChannel {
  /** The agent's name, or its address when dialled directly. */
  readonly agent: string;
  /** "agent 'web-1'" or "agent at 10.0.0.7:50051", for messages. */
  readonly label: string;
  /** The master's address when relayed, else the agent's; for error messages. */
  readonly address: string;
  readonly via: "master" | "agent";
  prepare(manifestJson: string, signal: AbortSignal): Promise<Prepared>;
  /**
   * {@link prepare} for a manifest the agent was sent before, named by the
   * SHA-256 of its JSON; undefined when the agent does not know it (send it
   * with prepare).
   */
  prepareKnown?(manifestSha256: string, signal: AbortSignal): Promise<Prepared | undefined>;
  /**
   * Tells the agent which manifest (by the SHA-256 of its JSON) was sent
   * last for this folder, so it checks that workspace for recycling while
   * the runner scans. A hint: failures are ignored.
   */
  warm?(previousManifestSha256: string, signal: AbortSignal): Promise<void>;
  upload(chunks: AsyncIterable<Uint8Array>, gzip: boolean, signal: AbortSignal): Promise<void>;
  runTask(
    req: MessageInitShape<typeof RunTaskRequestSchema>,
    signal: AbortSignal,
  ): AsyncIterable<RunTaskResponse>;
  /**
   * Dialled agents only: undefined when the agent answers, else why not
   * (the master knows for the others which agents are up).
   */
  unreachable?(signal: AbortSignal): Promise<string | undefined>;
  /**
   * Dialled agents only: a precise error for a call dropped before any
   * answer, when the cause can be found (an agent serving TLS dialled in
   * cleartext); undefined otherwise.
   */
  diagnose?(err: SlothError): Promise<SlothError | undefined>;
}

/**
 * True when an error says nothing answers at the address (refused, unknown
 * host, timed out, unreachable), as opposed to a peer that answered and
 * refused (token, TLS) or a connection cut short (which TLS on one side only
 * also gives).
 */
export function notThere(err: { code: string; message: string }): boolean {
  if (err.code === "SLOTH_DEADLINE") return true;
  return (
    err.code === "SLOTH_UNREACHABLE" &&
    /connection refused|host not found|connection timed out|host unreachable/.test(err.message)
  );
}

function prepared(r: PrepareWorkspaceResponse | undefined): Prepared {
  return { missing: r?.missing ?? [], bundles: r?.blobBundles === true };
}

/** A channel to the agent named `name`, relayed by the master. */
export function masterChannel(
  client: Client<typeof MasterService>,
  masterAddress: string,
  name: string,
): TaskChannel {
  return {
    agent: name,
    label: `agent '${name}'`,
    address: masterAddress,
    via: "master",
    async prepare(manifestJson, signal) {
      const r = await client.prepareWorkspaceOnAgent(
        { agentName: name, request: { manifestJson } },
        { signal },
      );
      return prepared(r.response);
    },
    async prepareKnown(manifestSha256, signal) {
      const r = await client.prepareWorkspaceOnAgent(
        { agentName: name, request: { manifestJson: "", manifestSha256 } },
        { signal },
      );
      return r.response?.manifestKnown ? prepared(r.response) : undefined;
    },
    async warm(previousManifestSha256, signal) {
      await client.prepareWorkspaceOnAgent(
        { agentName: name, request: { manifestJson: "", previousManifestSha256 } },
        { signal },
      );
    },
    async upload(chunks, gzip, signal) {
      async function* requests() {
        let first = true;
        for await (const chunk of chunks) {
          yield { agentName: first ? name : "", request: { chunk, gzip: first && gzip } };
          first = false;
        }
      }
      await client.uploadBlobsToAgent(requests(), { signal });
    },
    async *runTask(req, signal) {
      for await (const r of client.runTaskOnAgent({ agentName: name, request: req }, { signal })) {
        if (r.response) yield r.response;
      }
    },
  };
}

/** A channel to the agent at `address`, dialled with the cluster token (and TLS). */
export function directChannel(
  address: string,
  token: string,
  tls: TlsMaterial | undefined,
): TaskChannel & { close(): void } {
  const conn: SlothConnection = connect({ address, token, tls });
  const client = agentClient(conn);
  return {
    agent: address,
    label: `agent at ${address}`,
    address,
    via: "agent",
    async prepare(manifestJson, signal) {
      return prepared(await client.prepareWorkspace({ manifestJson }, { signal }));
    },
    async prepareKnown(manifestSha256, signal) {
      const r = await client.prepareWorkspace({ manifestJson: "", manifestSha256 }, { signal });
      return r.manifestKnown ? prepared(r) : undefined;
    },
    async warm(previousManifestSha256, signal) {
      await client.prepareWorkspace({ manifestJson: "", previousManifestSha256 }, { signal });
    },
    async upload(chunks, gzip, signal) {
      async function* requests() {
        let first = true;
        for await (const chunk of chunks) {
          yield { chunk, gzip: first && gzip };
          first = false;
        }
      }
      await client.uploadBlobs(requests(), { signal });
    },
    runTask: (req, signal) => client.runTask(req, { signal }),
    async unreachable(signal) {
      try {
        await client.health({}, { signal, timeoutMs: 5000 });
        return undefined;
      } catch (e) {
        if (signal.aborted) return undefined;
        const err = fromConnectError(e, { kind: "agent", address });
        // Not there at all; a refused certificate or a closed connection
        // (TLS on one side only) is a setting to fix: the call reports it.
        return notThere(err) ? err.message : undefined;
      }
    },
    // A TLS server drops a cleartext HTTP/2 preface without a word.
    diagnose: async (err) =>
      tls ? undefined : explainClosedConnection(err, { kind: "agent", address }),
    close: () => conn.close(),
  };
}
