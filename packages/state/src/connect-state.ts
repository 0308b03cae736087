import { StateError } from "./errors.js";
import { createStateStore, validateName } from "./store.js";
import type { StateStore } from "./types.js";

/** TLS material for {@link connectState}, as PEM text or buffers. */
export interface StateTls {
  /** CA that signed the master's certificate; omit to use the system store. */
  ca?: string | Buffer | undefined;
  /** Client certificate and key, when the master requires mTLS. */
  cert?: string | Buffer | undefined;
  key?: string | Buffer | undefined;
}

/** Options of {@link connectState}. */
export interface ConnectStateOptions {
  /** `HOST:PORT` of the master (resolve names with `@sloth/client`'s `resolveMaster`). */
  master: string;
  /** The cluster token. */
  token: string;
  /** Dial with TLS when given. */
  tls?: StateTls | undefined;
  /** Namespace of the returned view (default `"default"`). */
  namespace?: string | undefined;
  /** Deadline of each call to the master (default 10 000 ms). */
  callTimeoutMs?: number | undefined;
}

/**
 * Returns the {@link StateStore} interface over the network: every
 * operation goes to the master's StateService, which owns one state file.
 * Nothing is dialled until the first call; close it when done. Failures the
 * store reports keep their codes (`SLOTH_LOCK_HELD`, ...); transport
 * failures come as `SLOTH_UNREACHABLE`, `SLOTH_UNAUTHENTICATED`,
 * `SLOTH_DEADLINE`. Lock waits poll the master with jittered delays, as the
 * file store polls its file.
 */
export async function connectState(options: ConnectStateOptions): Promise<StateStore> {
  if (typeof options?.master !== "string" || options.master.length === 0) {
    throw new StateError(
      "SLOTH_INVALID_ARGUMENT",
      "cannot connect state: `master` must be HOST:PORT",
      {
        hint: 'pass the master\'s address, such as { master: "10.0.0.5:50053" }',
      },
    );
  }
  if (typeof options.token !== "string" || options.token.length === 0) {
    throw new StateError(
      "SLOTH_INVALID_ARGUMENT",
      "cannot connect state: `token` must be the cluster token",
      {
        hint: "read it from the master's token file (<data dir>/master/token) or SLOTH_RUNNER_TOKEN",
      },
    );
  }
  const namespace = validateName(options.namespace ?? "default", "namespace");
  // Connect and the generated code load only here, so `openState` users never pay for them.
  const { createRemoteBackend } = await import("./remote/backend.js");
  const backend = createRemoteBackend({
    address: options.master,
    token: options.token,
    tls: options.tls,
    callTimeoutMs: options.callTimeoutMs ?? 10_000,
  });
  return createStateStore(backend, namespace);
}
