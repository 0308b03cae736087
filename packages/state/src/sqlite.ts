import fs from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { StateError } from "./errors.js";

/**
 * How hard the file store works to keep committed writes across power loss:
 * `full` syncs the WAL on every commit; `normal` syncs only at checkpoints,
 * so a power cut (not a process crash) can lose the last commits.
 */
export type Durability = "full" | "normal";

// Resolves to the package's drizzle/ folder from both src/ and dist/.
const MIGRATIONS = fileURLToPath(new URL("../drizzle", import.meta.url));

/** True for SQLITE_BUSY and its extended codes (BUSY_SNAPSHOT, BUSY_RECOVERY...). */
function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code === "SQLITE_LOCKED");
}

/** Equal-jitter backoff: 0.25 ms growing to a cap of 8 ms, half of it random. */
function backoff(attempt: number): number {
  const base = Math.min(8, 0.25 * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}

/**
 * Runs a synchronous SQLite operation, retrying on SQLITE_BUSY with jittered
 * async sleeps until `timeoutMs` has passed. SQLite's own busy handler sleeps
 * in growing steps inside one process and lets a busy writer starve the
 * others (see PERFORMANCE.md); polling from the event loop keeps every
 * process's waits short and the loop responsive. The fast path stays
 * synchronous: a promise is made only once contention is seen.
 */
export function retryBusy<T>(fn: () => T, timeoutMs: number): T | Promise<T> {
  try {
    return fn();
  } catch (e) {
    if (!isBusy(e)) throw e;
    return retryLoop(fn, timeoutMs, e);
  }
}

async function retryLoop<T>(fn: () => T, timeoutMs: number, first: unknown): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last = first;
  for (let attempt = 1; performance.now() < deadline; attempt++) {
    await sleep(backoff(attempt));
    try {
      return fn();
    } catch (e) {
      if (!isBusy(e)) throw e;
      last = e;
    }
  }
  throw new StateError(
    "SLOTH_STATE_BUSY",
    `cannot access the state database: busy for ${timeoutMs} ms`,
    {
      cause: last,
      retryable: true,
      hint: "another process holds its write lock; try again or raise busyTimeoutMs",
    },
  );
}

/** A concurrent opener got there first (drizzle wraps the SQLite error as `cause`). */
function lostMigrationRace(e: unknown): boolean {
  const cause = (e as { cause?: unknown } | null)?.cause;
  const text = `${(e as Error | null)?.message} ${(cause as Error | null)?.message}`;
  return isBusy(e) || isBusy(cause) || text.includes("already exists");
}

/**
 * True when the newest committed migration is already recorded, judged the
 * way drizzle's migrator judges it. Checking first spares every open the
 * ~200 ms import of drizzle-orm, which matters to a CLI run.
 */
function migrated(db: Database.Database): boolean {
  const journal = JSON.parse(
    fs.readFileSync(path.join(MIGRATIONS, "meta", "_journal.json"), "utf8"),
  ) as {
    entries: { when: number }[];
  };
  const newest = Math.max(...journal.entries.map((e) => e.when));
  try {
    const row = db
      .prepare<[], { created_at: number }>(
        "SELECT created_at FROM __drizzle_migrations ORDER BY created_at DESC LIMIT 1",
      )
      .get();
    return row !== undefined && Number(row.created_at) >= newest;
  } catch {
    return false; // no migrations table yet: a new file
  }
}

async function migrateWithRetry(db: Database.Database, timeoutMs: number): Promise<void> {
  const { drizzle } = await import("drizzle-orm/better-sqlite3");
  const { migrate } = await import("drizzle-orm/better-sqlite3/migrator");
  const deadline = performance.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      migrate(drizzle(db), { migrationsFolder: MIGRATIONS });
      return;
    } catch (e) {
      if (!lostMigrationRace(e) || performance.now() > deadline || attempt >= 20) throw e;
      await sleep(backoff(attempt + 2));
    }
  }
}

/** Options of {@link openStateDatabase}. */
export interface OpenDatabaseOptions {
  durability: Durability;
  /** How long opening waits for another process migrating the same file. */
  busyTimeoutMs: number;
}

/** The largest file checked with `PRAGMA quick_check` when opened. */
const QUICK_CHECK_MAX = 64 * 1024 * 1024;

/**
 * Opens the file (creating it with mode 0600 and its directory with 0700),
 * switches to WAL, and applies the committed drizzle migrations. Several
 * processes may open a new file at once: the loser of the migration race
 * sees "table already exists" or SQLITE_BUSY and simply tries again, by
 * which time the winner's migration is recorded and nothing is left to do.
 */
export async function openStateDatabase(
  file: string,
  options: OpenDatabaseOptions,
): Promise<Database.Database> {
  let db: Database.Database;
  let fresh: boolean;
  try {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true, mode: 0o700 });
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (st?.isDirectory()) throw Object.assign(new Error("is a directory"), { code: "EISDIR" });
    fresh = st === undefined;
    db = new Database(file);
  } catch (e) {
    throw cannotOpen(file, e);
  }
  try {
    if (fresh) fs.chmodSync(file, 0o600);
    // A real busy timeout while opening: these steps run once and need the
    // write lock for a moment, so blocking briefly is the simplest correct wait.
    db.pragma(`busy_timeout = ${Math.min(options.busyTimeoutMs, 2 ** 31 - 1)}`);
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${options.durability === "normal" ? "NORMAL" : "FULL"}`);
    if (!migrated(db)) await migrateWithRetry(db, options.busyTimeoutMs);
    // A damaged page can make a key look absent and take writes silently:
    // files of ordinary size are checked when opened (about 1 ms per MiB).
    if (!fresh && (fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0) <= QUICK_CHECK_MAX) {
      const result = db.pragma("quick_check(1)", { simple: true });
      if (result !== "ok")
        throw Object.assign(new Error(`quick_check: ${String(result)}`), {
          code: "SQLITE_CORRUPT",
        });
    }
    // From here on waits are ours (retryBusy), not SQLite's busy handler.
    db.pragma("busy_timeout = 0");
    return db;
  } catch (e) {
    db.close();
    throw isBusy(e) ? e : cannotOpen(file, e);
  }
}

/** Opening failed for a reason the caller must fix: says which file and how. */
function cannotOpen(file: string, e: unknown): unknown {
  const code = (e as { code?: unknown } | null)?.code;
  const reasons: Record<string, [string, string]> = {
    EISDIR: ["it is a directory", "pass the path of a file"],
    ENOTDIR: ["a part of its path is not a directory", "pass a path whose parents are directories"],
    // mkdir of a parent that exists as a file.
    EEXIST: ["a part of its path is not a directory", "pass a path whose parents are directories"],
    EACCES: ["permission denied", "pass a path this user can write, or fix its permissions"],
    EPERM: ["permission denied", "pass a path this user can write, or fix its permissions"],
    EROFS: ["the file system is read-only", "pass a path on a writable file system"],
    SQLITE_CANTOPEN: [
      "SQLite cannot open it",
      "check that its folder exists and this user can write both the folder and the file",
    ],
    SQLITE_NOTADB: [
      "it is not a SQLite database",
      "pass another path; this file was not written by @sloth/state",
    ],
    SQLITE_CORRUPT: ["the database is corrupt", "restore it from a backup or pass another path"],
    SQLITE_READONLY: ["it is read-only", "pass a path this user can write, or fix its permissions"],
  };
  const r = typeof code === "string" ? reasons[code] : undefined;
  if (r === undefined) return e;
  return new StateError("SLOTH_STATE_UNAVAILABLE", `cannot open state ${file}: ${r[0]}`, {
    cause: e,
    hint: r[1],
    details: { path: file, cause: code },
  });
}
