import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";

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
