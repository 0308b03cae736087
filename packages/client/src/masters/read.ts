import { existsSync, readFileSync } from "node:fs";
import Database from "better-sqlite3";
import type { MasterRecord } from "./store.js";

interface Journal {
  entries: Array<{ when: number }>;
}

interface MasterRow {
  name: string;
  address: string;
  description: string;
  is_default: number;
  token_file: string | null;
  tls_cert: string | null;
  tls_key: string | null;
  tls_ca: string | null;
  created_at: number;
  updated_at: number;
}

const JOURNAL = new URL("../../drizzle/meta/_journal.json", import.meta.url);

/**
 * Lists the masters of an existing, fully migrated masters.db without loading
 * the query builder or the migrator: what `sloth-runner master list` needs to
 * start fast. Returns undefined (use {@link openMastersStore}) when the file
 * is missing, not migrated to this version, or cannot be read: never throws,
 * never writes.
 */
export function readMasters(file: string): MasterRecord[] | undefined {
  if (!existsSync(file)) return undefined;
  let db: Database.Database | undefined;
  try {
    const journal = JSON.parse(readFileSync(JOURNAL, "utf8")) as Journal;
    const latest = Math.max(...journal.entries.map((e) => e.when));
    db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma("busy_timeout = 5000");
    const applied = db.prepare("SELECT max(created_at) AS at FROM __drizzle_migrations").get() as
      | { at: number | null }
      | undefined;
    if (!applied?.at || applied.at < latest) return undefined;
    const rows = db
      .prepare(
        "SELECT name, address, description, is_default, token_file, tls_cert, tls_key, tls_ca, created_at, updated_at FROM masters ORDER BY created_at ASC, rowid ASC",
      )
      .all() as MasterRow[];
    return rows.map((r) => ({
      name: r.name,
      address: r.address,
      description: r.description,
      isDefault: r.is_default === 1,
      tokenFile: r.token_file ?? undefined,
      tls: {
        cert: r.tls_cert ?? undefined,
        key: r.tls_key ?? undefined,
        ca: r.tls_ca ?? undefined,
      },
      createdAt: new Date(r.created_at),
      updatedAt: new Date(r.updated_at),
    }));
  } catch {
    return undefined;
  } finally {
    db?.close();
  }
}
