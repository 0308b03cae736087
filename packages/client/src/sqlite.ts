import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { SlothError } from "./errors.js";

/** How hard a database works to keep committed writes across power loss. */
export type Durability = "full" | "normal";

/** Options for {@link openSqlite}. */
export interface OpenSqliteOptions {
  /** `full` (default) syncs on every commit; `normal` syncs at WAL checkpoints. */
  durability?: Durability;
  /** How long a writer waits for another process's lock, in ms (default 5000). */
  busyTimeoutMs?: number;
  /** File mode for a new database file (default 0600). */
  mode?: number;
}

/**
 * Opens (creating if needed) a SQLite file with the settings every Sloth
 * Runner database uses: WAL, a busy timeout, foreign keys, and the chosen
 * durability. The parent directory is created with mode 0700.
 */
export function openSqlite(file: string, options: OpenSqliteOptions = {}): Database.Database {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const fresh = !fs.existsSync(file);
  const db = new Database(file);
  if (fresh) fs.chmodSync(file, options.mode ?? 0o600);
  db.pragma("journal_mode = WAL");
  db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
  db.pragma(`synchronous = ${options.durability === "normal" ? "NORMAL" : "FULL"}`);
  db.pragma("foreign_keys = ON");
  return db;
}

/**
 * Runs `fn` in a `BEGIN IMMEDIATE` transaction, so the write lock is taken
 * up front instead of failing on upgrade from a read lock.
 */
export function writeTransaction<T>(db: Database.Database, fn: () => T): T {
  return db.transaction(fn).immediate();
}

const OPEN_FAILURES: Record<string, [reason: string, hint: string]> = {
  EISDIR: ["it is a directory", "give the path of a file"],
  ENOTDIR: ["a part of its path is not a directory", "give a path whose parents are directories"],
  EEXIST: ["a part of its path is not a directory", "give a path whose parents are directories"],
  EACCES: ["permission denied", "fix its permissions, or use another data directory"],
  EPERM: ["permission denied", "fix its permissions, or use another data directory"],
  EROFS: ["the file system is read-only", "use a data directory on a writable file system"],
  ENOSPC: ["the disk is full", "free some space"],
  SQLITE_FULL: ["the disk is full", "free some space"],
  SQLITE_CANTOPEN: [
    "SQLite cannot open it",
    "check that this user can write the file and its folder",
  ],
  SQLITE_NOTADB: ["it is not a SQLite database", "move it aside"],
  SQLITE_CORRUPT: ["the database is corrupt", "restore it from a backup, or move it aside"],
  SQLITE_READONLY: ["it is read-only", "fix its permissions, or use another data directory"],
  SQLITE_IOERR: [
    "the disk failed a read or write (full, or read-only)",
    "free some space, or check the file system",
  ],
};

/**
 * Describes a failure to open (or migrate) a SQLite file for the user, as a
 * one-line SLOTH_DATA_DIR error naming `what` it holds, the file and the
 * reason, with `recovery` (how to get going again) as the hint when given.
 * Returns other errors unchanged.
 */
export function sqliteOpenError(
  file: string,
  e: unknown,
  what: string,
  recovery?: string,
): unknown {
  const code = (e as { code?: unknown } | null)?.code;
  // SQLITE_IOERR_WRITE, SQLITE_IOERR_FSYNC, ...: the same story for the user.
  const base = typeof code === "string" && code.startsWith("SQLITE_IOERR") ? "SQLITE_IOERR" : code;
  const known = typeof base === "string" ? OPEN_FAILURES[base] : undefined;
  if (known === undefined) return e;
  const [reason, hint] = known;
  const fixable = code === "SQLITE_NOTADB" || code === "SQLITE_CORRUPT";
  return new SlothError("SLOTH_DATA_DIR", `cannot open ${what} ${file}: ${reason}`, {
    hint: fixable && recovery ? recovery : hint,
    cause: e,
    details: { path: file, cause: code },
  });
}

/**
 * Runs a schema migration, trying again a few times when it fails:
 * processes opening an older database at once race to apply the same
 * migration, and the loser's statements fail (the column now exists) or
 * wait out the lock; on its next try it finds the migration applied. A
 * failure that stays (a damaged file) is thrown after the last try.
 */
function lostMigrationRace(e: unknown): boolean {
  const cause = (e as { cause?: unknown } | null)?.cause;
  const text = `${(e as Error | null)?.message} ${(cause as Error | null)?.message}`;
  const code = `${(e as { code?: unknown } | null)?.code} ${(cause as { code?: unknown } | null)?.code}`;
  return (
    /SQLITE_BUSY|SQLITE_LOCKED/.test(code) ||
    /already exists|duplicate column|database is locked/.test(text)
  );
}

export function migrateWithRetry(run: () => void, attempts = 5): void {
  for (let i = 1; ; i++) {
    try {
      run();
      return;
    } catch (e) {
      if (i >= attempts || !lostMigrationRace(e)) throw e;
      // A synchronous pause: opening a store is synchronous.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 40 * i + Math.random() * 40);
    }
  }
}

/**
 * Opens a SQLite file and prepares it with `prepare` (wrapping it for an ORM
 * and migrating its schema, say). If either fails, the file is closed and
 * the failure described as {@link sqliteOpenError} does, with `what` the
 * file holds and how to `recover`.
 */
export function openSqliteWith<T>(
  file: string,
  options: OpenSqliteOptions,
  prepare: (sqlite: Database.Database) => T,
  what: string,
  recover?: string,
): { sqlite: Database.Database; value: T } {
  let sqlite: Database.Database | undefined;
  try {
    sqlite = openSqlite(file, options);
    return { sqlite, value: prepare(sqlite) };
  } catch (e) {
    sqlite?.close();
    throw sqliteOpenError(file, e, what, recover);
  }
}
