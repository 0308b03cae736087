import type Database from "better-sqlite3";
import type { LockAttempt, StateBackend, StoredEntry, StoredLock } from "./backend.js";
import { StateError } from "./errors.js";
import { type JsonValue, jsonEqual } from "./json.js";
import { retryBusy } from "./sqlite.js";

interface EntryRow {
  key: string;
  value: string;
  created_at: number;
  updated_at: number;
  expires_at: number | null;
}

interface LockRow {
  name: string;
  owner: string;
  token: number;
  acquired_at: number;
  expires_at: number;
}

const LIVE = "(expires_at IS NULL OR expires_at > ?)";
const ENTRY_COLUMNS = "key, value, created_at, updated_at, expires_at";

// A write to an expired row starts a new key, so its creation time resets.
const UPSERT = `INSERT INTO state_entries (namespace, key, value, created_at, updated_at, expires_at)
  VALUES (?, ?, ?, ?, ?, ?)
  ON CONFLICT (namespace, key) DO UPDATE SET
    value = excluded.value,
    updated_at = excluded.updated_at,
    expires_at = excluded.expires_at,
    created_at = CASE WHEN state_entries.expires_at IS NOT NULL
      AND state_entries.expires_at <= excluded.updated_at
      THEN excluded.created_at ELSE state_entries.created_at END`;

function toEntry(r: EntryRow): StoredEntry {
  return {
    key: r.key,
    value: JSON.parse(r.value) as JsonValue,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    expiresAt: r.expires_at,
  };
}

function toLock(r: LockRow): StoredLock {
  return {
    name: r.name,
    owner: r.owner,
    token: r.token,
    acquiredAt: r.acquired_at,
    expiresAt: r.expires_at,
  };
}

/**
 * The SQLite implementation of {@link StateBackend}. Every statement is
 * prepared once. Single-statement writes run in autocommit (atomic on their
 * own); read-modify-write operations run in `BEGIN IMMEDIATE` so the write
 * lock is held from the first read. `now` is read inside the transaction, so
 * expiry is judged at the moment the write lock is held.
 */
export function createFileBackend(db: Database.Database, busyTimeoutMs: number): StateBackend {
  const q = {
    get: db.prepare<[string, string, number], EntryRow>(
      `SELECT ${ENTRY_COLUMNS} FROM state_entries WHERE namespace = ? AND key = ? AND ${LIVE}`,
    ),
    upsert: db.prepare(UPSERT),
    delete: db.prepare<[string, string], { expires_at: number | null }>(
      "DELETE FROM state_entries WHERE namespace = ? AND key = ? RETURNING expires_at",
    ),
    list: db.prepare<[string, string, number], EntryRow>(
      `SELECT ${ENTRY_COLUMNS} FROM state_entries WHERE namespace = ? AND key >= ? AND ${LIVE} ORDER BY key`,
    ),
    deleteExpired: db.prepare("DELETE FROM state_entries WHERE expires_at <= ?"),
    lock: db.prepare<[string, string], LockRow>(
      "SELECT name, owner, token, acquired_at, expires_at FROM state_locks WHERE namespace = ? AND name = ?",
    ),
    nextToken: db.prepare<[string, string], { token: number }>(
      `INSERT INTO state_fences (namespace, name, token) VALUES (?, ?, 1)
       ON CONFLICT (namespace, name) DO UPDATE SET token = token + 1 RETURNING token`,
    ),
    putLock: db.prepare(
      `INSERT OR REPLACE INTO state_locks (namespace, name, owner, token, acquired_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    renewLock: db.prepare(
      "UPDATE state_locks SET expires_at = ? WHERE namespace = ? AND name = ? AND owner = ? AND token = ? AND expires_at > ?",
    ),
    releaseLock: db.prepare<[string, string, string, number], { expires_at: number }>(
      "DELETE FROM state_locks WHERE namespace = ? AND name = ? AND owner = ? AND token = ? RETURNING expires_at",
    ),
    dropLock: db.prepare("DELETE FROM state_locks WHERE namespace = ? AND name = ?"),
    deleteExpiredLocks: db.prepare("DELETE FROM state_locks WHERE expires_at <= ?"),
  };
  const run = <T>(fn: () => T) => {
    // Leases outlive a closed store; give them a clear error, not better-sqlite3's TypeError.
    if (!db.open)
      throw new StateError("SLOTH_STATE_CLOSED", "cannot use the state store: it is closed");
    return retryBusy(fn, busyTimeoutMs);
  };
  const immediate = <A extends unknown[], T>(fn: (...args: A) => T) => {
    const tx = db.transaction(fn);
    return (...args: A) => run(() => tx.immediate(...args));
  };

  const liveRow = (ns: string, key: string, now: number) => q.get.get(ns, key, now);

  const increment = immediate((ns: string, key: string, by: number): number => {
    const now = Date.now();
    const row = liveRow(ns, key, now);
    const current: unknown = row ? JSON.parse(row.value) : 0;
    if (typeof current !== "number") {
      throw new StateError(
        "SLOTH_STATE_NOT_A_NUMBER",
        `cannot increment key '${key}' in namespace '${ns}': its value is not a number`,
        { details: { namespace: ns, key, value: current } },
      );
    }
    const next = current + by;
    // Counts past 2^53 - 1 would silently stop adding up.
    if (Number.isInteger(current) && Number.isInteger(by) && !Number.isSafeInteger(next)) {
      throw new StateError(
        "SLOTH_INVALID_ARGUMENT",
        `cannot increment key '${key}': the result ${next} is beyond ${Number.MAX_SAFE_INTEGER}, where integers lose precision`,
        { details: { namespace: ns, key, value: current, by } },
      );
    }
    if (!Number.isFinite(next)) {
      throw new StateError(
        "SLOTH_INVALID_ARGUMENT",
        `cannot increment key '${key}': the result is not finite`,
        {
          details: { namespace: ns, key },
        },
      );
    }
    q.upsert.run(ns, key, JSON.stringify(next), now, now, row?.expires_at ?? null);
    return next;
  });

  const cas = immediate(
    (
      ns: string,
      key: string,
      expected: JsonValue | undefined,
      nextJson: string | undefined,
      ttl: number | undefined,
    ) => {
      const now = Date.now();
      const row = liveRow(ns, key, now);
      const current = row ? (JSON.parse(row.value) as JsonValue) : undefined;
      const matches =
        row === undefined
          ? expected === undefined
          : expected !== undefined && jsonEqual(current, expected);
      if (!matches) return { ok: false, current };
      if (nextJson === undefined) {
        q.delete.get(ns, key);
        return { ok: true, current: undefined };
      }
      q.upsert.run(ns, key, nextJson, now, now, ttl === undefined ? null : now + ttl);
      return { ok: true, current: JSON.parse(nextJson) as JsonValue };
    },
  );

  const takeLock = immediate(
    (ns: string, name: string, owner: string, ttl: number): LockAttempt => {
      const now = Date.now();
      const row = q.lock.get(ns, name);
      if (row && row.expires_at > now) {
        if (row.owner !== owner) return { ok: false, holder: toLock(row) };
        // The same owner asking again keeps its token: it already holds the lock.
        q.renewLock.run(now + ttl, ns, name, owner, row.token, now);
        return { ok: true, token: row.token, acquiredAt: row.acquired_at, expiresAt: now + ttl };
      }
      const token = q.nextToken.get(ns, name)?.token;
      if (token === undefined) throw new Error("fence counter returned no row");
      q.putLock.run(ns, name, owner, token, now, now + ttl);
      return { ok: true, token, acquiredAt: now, expiresAt: now + ttl };
    },
  );

  const unlock = immediate((ns: string, name: string, owner: string | undefined) => {
    const row = q.lock.get(ns, name);
    if (!row) return undefined;
    const live = row.expires_at > Date.now();
    if (live && owner !== undefined && row.owner !== owner) {
      throw new StateError(
        "SLOTH_LOCK_HELD",
        `cannot unlock '${name}': it is held by '${row.owner}'`,
        {
          details: { namespace: ns, name, holder: row.owner, expiresAt: row.expires_at },
          hint: "only its owner can release it; break it with force",
        },
      );
    }
    q.dropLock.run(ns, name);
    return live ? toLock(row) : undefined;
  });

  return {
    get: (ns, key) =>
      run(() => {
        const row = liveRow(ns, key, Date.now());
        return row ? toEntry(row) : undefined;
      }),
    set: (ns, key, json, ttl) =>
      run(() => {
        const now = Date.now();
        q.upsert.run(ns, key, json, now, now, ttl === undefined ? null : now + ttl);
      }),
    delete: (ns, key) =>
      run(() => {
        const now = Date.now();
        const row = q.delete.get(ns, key);
        return row !== undefined && (row.expires_at === null || row.expires_at > now);
      }),
    list: (ns, prefix, limit) =>
      run(() => {
        const out: StoredEntry[] = [];
        // Keys sharing a prefix are contiguous in byte order: stop at the first that does not.
        for (const row of q.list.iterate(ns, prefix, Date.now())) {
          if (!row.key.startsWith(prefix) || out.length >= limit) break;
          out.push(toEntry(row));
        }
        return out;
      }),
    increment,
    cas,
    tryLock: (ns, name, owner, ttl) => {
      // Reading first keeps pollers of a held lock off the write lock.
      const peek = run(() => {
        const row = q.lock.get(ns, name);
        return row && row.owner !== owner && row.expires_at > Date.now() ? row : undefined;
      });
      const decide = (row: LockRow | undefined): LockAttempt | Promise<LockAttempt> =>
        row ? { ok: false, holder: toLock(row) } : takeLock(ns, name, owner, ttl);
      return peek instanceof Promise ? peek.then(decide) : decide(peek);
    },
    extendLock: (ns, name, owner, token, ttl) =>
      run(() => {
        const now = Date.now();
        const r = q.renewLock.run(now + ttl, ns, name, owner, token, now);
        return r.changes === 1 ? now + ttl : undefined;
      }),
    releaseLock: (ns, name, owner, token) =>
      run(() => {
        const row = q.releaseLock.get(ns, name, owner, token);
        return row !== undefined && row.expires_at > Date.now();
      }),
    inspectLock: (ns, name) =>
      run(() => {
        const row = q.lock.get(ns, name);
        return row && row.expires_at > Date.now() ? toLock(row) : undefined;
      }),
    unlock,
    purgeExpired: () =>
      run(() => {
        const now = Date.now();
        return q.deleteExpired.run(now).changes + q.deleteExpiredLocks.run(now).changes;
      }),
    close: () => {
      db.close();
    },
  };
}
