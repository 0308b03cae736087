import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { isSlothError, toConnectError } from "@sloth/client";
import {
  type StateEntryMessage,
  StateErrorDetailSchema,
  type StateLockHolder,
  type StateService,
} from "@sloth/proto";
import type { JsonValue, StateBackend, StoredEntry, StoredLock } from "@sloth/state";

// What a client library that knows nothing of StateErrorDetail still reads.
const CODE_HEADER = "sloth-error-code";

const WIRE_CODES: Record<string, Code> = {
  SLOTH_INVALID_ARGUMENT: Code.InvalidArgument,
  SLOTH_STATE_NOT_A_NUMBER: Code.FailedPrecondition,
  SLOTH_LOCK_HELD: Code.FailedPrecondition,
  SLOTH_LOCK_LOST: Code.FailedPrecondition,
  SLOTH_STATE_BUSY: Code.Unavailable,
  SLOTH_STATE_CLOSED: Code.Unavailable,
  SLOTH_STATE_UNAVAILABLE: Code.Unavailable,
  SLOTH_CANCELLED: Code.Canceled,
};

/**
 * The server side of the state error mapping (`connectState` holds the
 * other): a store error keeps its code, details, hint and retryability in a
 * StateErrorDetail, and its code in the `sloth-error-code` header.
 */
export function stateErrorToWire(e: unknown): ConnectError {
  if (e instanceof ConnectError || !isSlothError(e)) return toConnectError(e);
  const details = (e as { details?: unknown }).details ?? {};
  const err = new ConnectError(e.message, WIRE_CODES[e.code] ?? Code.Internal, undefined, [
    {
      desc: StateErrorDetailSchema,
      value: {
        code: e.code,
        detailsJson: JSON.stringify(details),
        hint: e.hint ?? "",
        retryable: e.retryable,
      },
    },
  ]);
  err.metadata.set(CODE_HEADER, e.code);
  return err;
}

const entryMessage = (e: StoredEntry): Omit<StateEntryMessage, "$typeName"> => ({
  key: e.key,
  valueJson: JSON.stringify(e.value),
  createdAtMs: BigInt(e.createdAt),
  updatedAtMs: BigInt(e.updatedAt),
  expiresAtMs: e.expiresAt === null ? undefined : BigInt(e.expiresAt),
});

const holderMessage = (l: StoredLock): Omit<StateLockHolder, "$typeName"> => ({
  name: l.name,
  owner: l.owner,
  fencingToken: BigInt(l.token),
  acquiredAtMs: BigInt(l.acquiredAt),
  expiresAtMs: BigInt(l.expiresAt),
});

const ms = (v: bigint | undefined) => (v === undefined ? undefined : Number(v));

function parseExpected(json: string | undefined): JsonValue | undefined {
  if (json === undefined) return undefined;
  try {
    return JSON.parse(json) as JsonValue;
  } catch {
    throw new ConnectError("invalid expected_json: not JSON text", Code.InvalidArgument);
  }
}

/**
 * The StateService over a backend the master owns. `backend()` opens the
 * file on first use; `closed` refuses calls once the master stops.
 */
export function createStateService(
  backend: () => Promise<StateBackend>,
  closed: AbortSignal,
): ServiceImpl<typeof StateService> {
  const run = async <T>(fn: (b: StateBackend) => T | Promise<T>): Promise<T> => {
    if (closed.aborted) throw new ConnectError("master is shutting down", Code.Unavailable);
    try {
      return await fn(await backend());
    } catch (e) {
      throw stateErrorToWire(e);
    }
  };
  return {
    get: (r) =>
      run(async (b) => {
        const e = await b.get(r.namespace, r.key);
        return { entry: e ? entryMessage(e) : undefined };
      }),
    set: (r) =>
      run(async (b) => {
        await b.set(r.namespace, r.key, r.valueJson, ms(r.ttlMs));
        return {};
      }),
    delete: (r) => run(async (b) => ({ deleted: await b.delete(r.namespace, r.key) })),
    list: (r) =>
      run(async (b) => {
        const limit = r.limit === undefined ? Number.POSITIVE_INFINITY : Number(r.limit);
        return { entries: (await b.list(r.namespace, r.prefix, limit)).map(entryMessage) };
      }),
    increment: (r) => run(async (b) => ({ value: await b.increment(r.namespace, r.key, r.by) })),
    compareAndSwap: (r) =>
      run(async (b) => {
        const expected = parseExpected(r.expectedJson);
        const res = await b.cas(r.namespace, r.key, expected, r.nextJson, ms(r.ttlMs));
        return {
          ok: res.ok,
          currentJson: res.current === undefined ? undefined : JSON.stringify(res.current),
        };
      }),
    tryLock: (r) =>
      run(async (b) => {
        const a = await b.tryLock(r.namespace, r.name, r.owner, Number(r.ttlMs));
        return a.ok
          ? {
              acquired: true,
              fencingToken: BigInt(a.token),
              acquiredAtMs: BigInt(a.acquiredAt),
              expiresAtMs: BigInt(a.expiresAt),
            }
          : { acquired: false, holder: holderMessage(a.holder) };
      }),
    extendLock: (r) =>
      run(async (b) => {
        const t = Number(r.fencingToken);
        const exp = await b.extendLock(r.namespace, r.name, r.owner, t, Number(r.ttlMs));
        return { held: exp !== undefined, expiresAtMs: BigInt(exp ?? 0) };
      }),
    releaseLock: (r) =>
      run(async (b) => ({
        held: await b.releaseLock(r.namespace, r.name, r.owner, Number(r.fencingToken)),
      })),
    inspectLock: (r) =>
      run(async (b) => {
        const l = await b.inspectLock(r.namespace, r.name);
        return { holder: l ? holderMessage(l) : undefined };
      }),
    unlock: (r) =>
      run(async (b) => {
        const l = await b.unlock(r.namespace, r.name, r.owner);
        return { broken: l ? holderMessage(l) : undefined };
      }),
    purgeExpired: () => run(async (b) => ({ purged: BigInt(await b.purgeExpired()) })),
  };
}
