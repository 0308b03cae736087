import { type CallOptions, type Client, createClient } from "@connectrpc/connect";
import { connect, type TlsMaterial } from "@sloth/client";
import { type StateEntryMessage, type StateLockHolder, StateService } from "@sloth/proto";
import type { StateBackend, StoredEntry, StoredLock } from "../backend.js";
import { StateError } from "../errors.js";
import type { JsonValue } from "../json.js";
import { stateErrorFromWire } from "./errors.js";

/** What {@link createRemoteBackend} needs to reach the master. */
export interface RemoteBackendOptions {
  /** `HOST:PORT` of the master. */
  address: string;
  token: string;
  tls?: TlsMaterial | undefined;
  /** Deadline of each call (ms). */
  callTimeoutMs: number;
}

const toEntry = (e: StateEntryMessage): StoredEntry => ({
  key: e.key,
  value: JSON.parse(e.valueJson) as JsonValue,
  createdAt: Number(e.createdAtMs),
  updatedAt: Number(e.updatedAtMs),
  expiresAt: e.expiresAtMs === undefined ? null : Number(e.expiresAtMs),
});

const toLock = (h: StateLockHolder): StoredLock => ({
  name: h.name,
  owner: h.owner,
  token: Number(h.fencingToken),
  acquiredAt: Number(h.acquiredAtMs),
  expiresAt: Number(h.expiresAtMs),
});

const big = (ms: number | undefined) => (ms === undefined ? undefined : BigInt(ms));

/**
 * A {@link StateBackend} forwarding each primitive to the master's
 * StateService over one HTTP/2 connection. Expiry is judged by the master's
 * clock; the lease watchdog on this side counts from when each request was
 * sent, so it fires no later than the master's expiry.
 */
export function createRemoteBackend(options: RemoteBackendOptions): StateBackend {
  const conn = connect({ address: options.address, token: options.token, tls: options.tls });
  const client: Client<typeof StateService> = createClient(StateService, conn.transport);
  let closed = false;
  const call = async <T>(fn: (c: Client<typeof StateService>, o: CallOptions) => Promise<T>) => {
    if (closed)
      throw new StateError("SLOTH_STATE_CLOSED", "cannot use the state store: it is closed");
    try {
      return await fn(client, { timeoutMs: options.callTimeoutMs });
    } catch (e) {
      throw stateErrorFromWire(e, options.address);
    }
  };
  return {
    get: (namespace, key) =>
      call(async (c, o) => {
        const { entry } = await c.get({ namespace, key }, o);
        return entry ? toEntry(entry) : undefined;
      }),
    set: (namespace, key, valueJson, ttl) =>
      call(async (c, o) => {
        await c.set({ namespace, key, valueJson, ttlMs: big(ttl) }, o);
      }),
    delete: (namespace, key) =>
      call(async (c, o) => (await c.delete({ namespace, key }, o)).deleted),
    list: (namespace, prefix, limit) =>
      call(async (c, o) => {
        const req = { namespace, prefix, limit: Number.isFinite(limit) ? big(limit) : undefined };
        return (await c.list(req, o)).entries.map(toEntry);
      }),
    increment: (namespace, key, by) =>
      call(async (c, o) => (await c.increment({ namespace, key, by }, o)).value),
    cas: (namespace, key, expected, nextJson, ttl) =>
      call(async (c, o) => {
        const r = await c.compareAndSwap(
          {
            namespace,
            key,
            expectedJson: expected === undefined ? undefined : JSON.stringify(expected),
            nextJson,
            ttlMs: big(ttl),
          },
          o,
        );
        const current =
          r.currentJson === undefined ? undefined : (JSON.parse(r.currentJson) as JsonValue);
        return { ok: r.ok, current };
      }),
    tryLock: (namespace, name, owner, ttl) =>
      call(async (c, o) => {
        const r = await c.tryLock({ namespace, name, owner, ttlMs: BigInt(ttl) }, o);
        if (r.acquired) {
          return {
            ok: true as const,
            token: Number(r.fencingToken),
            acquiredAt: Number(r.acquiredAtMs),
            expiresAt: Number(r.expiresAtMs),
          };
        }
        if (!r.holder) throw new Error("StateService.TryLock answered without a holder");
        return { ok: false as const, holder: toLock(r.holder) };
      }),
    extendLock: (namespace, name, owner, token, ttl) =>
      call(async (c, o) => {
        const req = { namespace, name, owner, fencingToken: BigInt(token), ttlMs: BigInt(ttl) };
        const r = await c.extendLock(req, o);
        return r.held ? Number(r.expiresAtMs) : undefined;
      }),
    releaseLock: (namespace, name, owner, token) =>
      call(
        async (c, o) =>
          (await c.releaseLock({ namespace, name, owner, fencingToken: BigInt(token) }, o)).held,
      ),
    inspectLock: (namespace, name) =>
      call(async (c, o) => {
        const { holder } = await c.inspectLock({ namespace, name }, o);
        return holder ? toLock(holder) : undefined;
      }),
    unlock: (namespace, name, owner) =>
      call(async (c, o) => {
        const { broken } = await c.unlock({ namespace, name, owner }, o);
        return broken ? toLock(broken) : undefined;
      }),
    purgeExpired: () => call(async (c, o) => Number((await c.purgeExpired({}, o)).purged)),
    close: () => {
      closed = true;
      conn.close();
    },
  };
}
