import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import type { StateBackend, StoredLock } from "./backend.js";
import { type Duration, parseDuration, parseTtl } from "./duration.js";
import { invalid, isStateError, StateError } from "./errors.js";
import type { Lease, LockOptions } from "./types.js";

const DEFAULT_TTL_MS = 30_000;

/** A fresh owner string; unique per call, readable in `inspect` output. */
export function defaultOwner(): string {
  return `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
}

/** Poll delay: 2 ms doubling to 50 ms, randomised over its upper half. */
function pollDelay(attempt: number): number {
  const base = Math.min(50, 2 * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}

function lockHeld(ns: string, name: string, holder: StoredLock, waitedMs: number): StateError {
  const waited = waitedMs > 0 ? ` (waited ${Math.round(waitedMs)} ms)` : "";
  return new StateError(
    "SLOTH_LOCK_HELD",
    `cannot lock '${name}': held by '${holder.owner}'${waited}`,
    {
      retryable: true,
      details: {
        namespace: ns,
        name,
        holder: holder.owner,
        fencingToken: holder.token,
        expiresAt: new Date(holder.expiresAt),
      },
    },
  );
}

function cancelled(name: string, signal: AbortSignal): StateError {
  return new StateError("SLOTH_CANCELLED", `cannot lock '${name}': the wait was cancelled`, {
    cause: signal.reason,
  });
}

/**
 * Takes a lock through any backend. Waiters poll with jittered, growing
 * delays (never past the holder's expiry, when a takeover becomes possible)
 * instead of queueing: simple and robust against crashed waiters, but not
 * fair: a waiter can lose every race while others win.
 */
export async function acquireLease(
  backend: StateBackend,
  namespace: string,
  name: string,
  options: LockOptions = {},
): Promise<Lease> {
  const ttl = parseTtl(options.ttl ?? DEFAULT_TTL_MS);
  const waitMs = parseDuration(options.waitMs ?? 0, "waitMs");
  const owner = options.owner ?? defaultOwner();
  // The same rule as for names, locally and over the network alike.
  if (typeof owner !== "string" || owner.length === 0 || owner.length > 1024)
    throw invalid(`cannot lock '${name}': owner must be a string of 1 to 1,024 characters`);
  const { signal } = options;
  const started = performance.now();
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted) throw cancelled(name, signal);
    const sent = performance.now();
    const r = await backend.tryLock(namespace, name, owner, ttl);
    if (r.ok) {
      const lease = new StoreLease(
        backend,
        namespace,
        name,
        owner,
        r.token,
        ttl,
        options.autoRenew ?? false,
      );
      lease.granted(r.acquiredAt, r.expiresAt, sent);
      return lease;
    }
    const remaining = started + waitMs - performance.now();
    if (remaining <= 0) {
      throw lockHeld(namespace, name, r.holder, waitMs > 0 ? performance.now() - started : 0);
    }
    const untilExpiry = Math.max(1, r.holder.expiresAt - Date.now() + 1);
    const delay = Math.min(remaining, pollDelay(attempt), untilExpiry);
    try {
      await sleep(delay, undefined, signal ? { signal } : {});
    } catch (e) {
      if (signal?.aborted) throw cancelled(name, signal);
      throw e;
    }
  }
}

class StoreLease implements Lease {
  readonly #backend: StateBackend;
  readonly #ttl: number;
  readonly #autoRenew: boolean;
  readonly #controller = new AbortController();
  #acquiredAt = 0;
  #expiresAt = 0;
  #released = false;
  #watchdog: NodeJS.Timeout | undefined;
  #renewer: NodeJS.Timeout | undefined;

  constructor(
    backend: StateBackend,
    readonly namespace: string,
    readonly name: string,
    readonly owner: string,
    readonly fencingToken: number,
    ttl: number,
    autoRenew: boolean,
  ) {
    this.#backend = backend;
    this.#ttl = ttl;
    this.#autoRenew = autoRenew;
  }

  get acquiredAt(): Date {
    return new Date(this.#acquiredAt);
  }
  get expiresAt(): Date {
    return new Date(this.#expiresAt);
  }
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /**
   * Records a grant and re-arms the timers. The watchdog counts the TTL from
   * when the request was sent, on this process's monotonic clock, so it
   * fires no later than the store's expiry whatever the clocks say.
   */
  granted(acquiredAt: number, expiresAt: number, sentAt: number, ttl = this.#ttl): void {
    this.#acquiredAt = acquiredAt;
    this.#expiresAt = expiresAt;
    clearTimeout(this.#watchdog);
    clearTimeout(this.#renewer);
    const left = Math.max(0, sentAt + ttl - performance.now());
    this.#watchdog = setTimeout(() => this.#lost("its TTL passed without renewal"), left).unref();
    if (this.#autoRenew) {
      this.#renewer = setTimeout(() => void this.#renew(), Math.min(left, this.#ttl / 3)).unref();
    }
  }

  async #renew(): Promise<void> {
    try {
      await this.extend();
    } catch (e) {
      if (isStateError(e, "SLOTH_LOCK_LOST") || this.#released) return;
      // A transient failure (busy file, network): try again while time is left.
      this.#renewer = setTimeout(() => void this.#renew(), Math.min(1000, this.#ttl / 10)).unref();
    }
  }

  #lost(reason: string): StateError {
    const err = new StateError("SLOTH_LOCK_LOST", `lost lock '${this.name}': ${reason}`, {
      details: { namespace: this.namespace, name: this.name, fencingToken: this.fencingToken },
    });
    clearTimeout(this.#watchdog);
    clearTimeout(this.#renewer);
    if (!this.#controller.signal.aborted) this.#controller.abort(err);
    return err;
  }

  async extend(ttl?: Duration): Promise<void> {
    if (this.#released) throw this.#lost("it was released");
    if (this.#controller.signal.aborted) throw this.#controller.signal.reason;
    const ms = ttl === undefined ? this.#ttl : parseTtl(ttl);
    const sent = performance.now();
    const exp = await this.#backend.extendLock(
      this.namespace,
      this.name,
      this.owner,
      this.fencingToken,
      ms,
    );
    if (exp === undefined) throw this.#lost("it expired or was broken before renewal");
    if (!this.#released) this.granted(this.#acquiredAt, exp, sent, ms);
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    clearTimeout(this.#watchdog);
    clearTimeout(this.#renewer);
    const held = await this.#backend.releaseLock(
      this.namespace,
      this.name,
      this.owner,
      this.fencingToken,
    );
    if (!held) throw this.#lost("it expired or was broken before release");
  }

  /** Releases; a lease already lost is not an error here, since `signal` reported it. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.release();
    } catch (e) {
      if (!isStateError(e, "SLOTH_LOCK_LOST")) throw e;
    }
  }
}
