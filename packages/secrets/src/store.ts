import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { migrateWithRetry, openSqliteWith, writeTransaction } from "@sloth/client/light";
import type Database from "better-sqlite3";
import { and, desc, eq, lt, sql } from "drizzle-orm";
import { type BetterSQLite3Database, drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { newNonce, open, seal, stretch } from "./crypto.js";
import { SecretsError } from "./errors.js";
import { secretAudit, secretKeyCheck, secretVersions } from "./schema.js";
import {
  type AuditEntry,
  MAX_VALUE_BYTES,
  MAX_VERSIONS,
  type SecretInfo,
  type SecretsKey,
} from "./types.js";

const MIGRATIONS = fileURLToPath(new URL("../drizzle", import.meta.url));
const CHECK_TEXT = "sloth-runner secrets key check";
/** The environment of a secret set or read without one. */
export const DEFAULT_ENV = "default";

/** Options of {@link openSecretsStore}. */
export interface SecretsStoreOptions {
  /** Path of secrets.db (created and migrated if needed, mode 0600). */
  path: string;
  /** The key; needed to set and read values, not to list, delete or audit. */
  key?: SecretsKey | undefined;
}

/** Which secret: a name, in an environment (default "default"). */
export interface SecretRef {
  env?: string | undefined;
}

/** Encrypted secrets in SQLite. Safe to use from several processes. */
export interface SecretsStore {
  /** Seals `value` as the next version of `name`; returns what is listed for it. */
  set(name: string, value: string, ref?: SecretRef): SecretInfo;
  /** The current value (or `version`); SLOTH_SECRET_NOT_FOUND when there is none. Audited. */
  get(name: string, ref?: SecretRef & { version?: number | undefined }): string;
  /**
   * Every current value of `env`, by name, recorded once in the audit
   * trail as used by `purpose` (a workflow run loads its secrets so).
   */
  all(env: string, purpose: string): Map<string, string>;
  /** The secrets, by environment then name; of `env` only when given. */
  list(env?: string): SecretInfo[];
  /** Deletes every version of `name`; SLOTH_SECRET_NOT_FOUND when there is none. Audited. */
  delete(name: string, ref?: SecretRef): void;
  /** The audit trail, newest first. */
  audit(filter?: { env?: string; name?: string; limit?: number }): AuditEntry[];
  /**
   * Seals every kept version again under `next` (a key file is written
   * beside the old one and renamed over it once the database holds the new
   * sealing, so an interruption leaves a key that opens it). Returns how
   * many values were sealed again.
   */
  rotateKey(next: SecretsKey): number;
  close(): void;
}

/** Secret names: what an environment variable or a Lua string carries plainly. */
const NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
const ENV = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

/** Checks a secret name; returns it. */
export function checkSecretName(name: unknown): string {
  if (typeof name !== "string" || !NAME.test(name))
    throw new SecretsError(
      "SLOTH_INVALID_ARGUMENT",
      `invalid secret name ${JSON.stringify(name)}: use 1-128 letters, digits, '_', '.' or '-', starting with a letter or '_'`,
      { hint: "choose a name such as db_password" },
    );
  return name;
}

/** Checks an environment name; returns it. */
export function checkEnvName(env: unknown): string {
  if (typeof env !== "string" || !ENV.test(env))
    throw new SecretsError(
      "SLOTH_INVALID_ARGUMENT",
      `invalid environment ${JSON.stringify(env)}: use 1-32 letters, digits, '_' or '-', starting with a letter or digit`,
      { hint: "choose a name such as production" },
    );
  return env;
}

function actor(): string {
  let user = "unknown";
  try {
    user = os.userInfo().username;
  } catch {
    user = process.env.USER ?? "unknown";
  }
  return `${user}@${os.hostname()}`;
}

const aad = (env: string, name: string, version: number) => `v1\0${env}\0${name}\0${version}`;

/** Opens (creating and migrating) a secrets database. */
export function openSecretsStore(options: SecretsStoreOptions): SecretsStore {
  const { sqlite, value: db } = openSqliteWith(
    options.path,
    { durability: "full", busyTimeoutMs: 30_000 },
    (opened) => {
      const orm = drizzle(opened);
      migrateWithRetry(() => migrate(orm, { migrationsFolder: MIGRATIONS }));
      return orm;
    },
    "the secrets database",
    "move it aside (a new, empty one is created; the moved file keeps the old secrets, sealed)",
  );
  return new SqliteSecretsStore(sqlite, db, options.key);
}

class SqliteSecretsStore implements SecretsStore {
  private key: { key: Buffer; keyId: string } | undefined;
  private readonly who = actor();

  constructor(
    private readonly sqlite: Database.Database,
    private readonly db: BetterSQLite3Database,
    private readonly source: SecretsKey | undefined,
  ) {}

  set(name: string, value: string, ref: SecretRef = {}): SecretInfo {
    checkSecretName(name);
    const env = checkEnvName(ref.env ?? DEFAULT_ENV);
    if (typeof value !== "string" || value.length === 0)
      throw new SecretsError(
        "SLOTH_INVALID_ARGUMENT",
        `cannot set secret '${name}': the value is empty`,
        {
          hint: "give a value (on standard input, or at the prompt)",
        },
      );
    const plain = Buffer.from(value, "utf8");
    if (plain.length > MAX_VALUE_BYTES)
      throw new SecretsError(
        "SLOTH_INVALID_ARGUMENT",
        `cannot set secret '${name}': the value is ${plain.length} bytes, over the limit of ${MAX_VALUE_BYTES}`,
        { hint: "keep large files elsewhere and store their path or a key to them" },
      );
    return writeTransaction(this.sqlite, () => {
      const { key } = this.unlock(true);
      const last = this.db
        .select({ v: sql<number>`max(${secretVersions.version})` })
        .from(secretVersions)
        .where(and(eq(secretVersions.env, env), eq(secretVersions.name, name)))
        .get();
      const version = (last?.v ?? 0) + 1;
      const nonce = newNonce();
      const now = Date.now();
      this.db
        .insert(secretVersions)
        .values({
          env,
          name,
          version,
          nonce,
          sealed: seal(key, nonce, plain, aad(env, name, version)),
          createdAt: now,
          createdBy: this.who,
        })
        .run();
      this.db
        .delete(secretVersions)
        .where(
          and(
            eq(secretVersions.env, env),
            eq(secretVersions.name, name),
            lt(secretVersions.version, version - MAX_VERSIONS + 1),
          ),
        )
        .run();
      this.record("set", { env, name, version });
      return this.info(env, name) as SecretInfo;
    });
  }

  get(name: string, ref: SecretRef & { version?: number | undefined } = {}): string {
    checkSecretName(name);
    const env = checkEnvName(ref.env ?? DEFAULT_ENV);
    // One read transaction: a key rotation never shows half done.
    return this.sqlite.transaction(() => this.getIn(name, env, ref.version))();
  }

  private getIn(name: string, env: string, version: number | undefined): string {
    const rows = this.db
      .select()
      .from(secretVersions)
      .where(
        and(
          eq(secretVersions.env, env),
          eq(secretVersions.name, name),
          ...(version === undefined ? [] : [eq(secretVersions.version, version)]),
        ),
      )
      .orderBy(desc(secretVersions.version))
      .limit(1)
      .all();
    const row = rows[0];
    if (row === undefined) throw this.notFound(name, env, version);
    const value = this.unseal(row);
    this.record("get", { env, name, version: row.version });
    return value;
  }

  all(env: string, purpose: string): Map<string, string> {
    checkEnvName(env);
    return writeTransaction(this.sqlite, () => this.allIn(env, purpose));
  }

  private allIn(env: string, purpose: string): Map<string, string> {
    const rows = this.db
      .select()
      .from(secretVersions)
      .where(eq(secretVersions.env, env))
      .orderBy(secretVersions.name, desc(secretVersions.version))
      .all();
    const out = new Map<string, string>();
    for (const row of rows) if (!out.has(row.name)) out.set(row.name, this.unseal(row));
    if (out.size > 0) this.record("use", { env, detail: `${out.size} secret(s) for ${purpose}` });
    return out;
  }

  list(env?: string): SecretInfo[] {
    if (env !== undefined) checkEnvName(env);
    const rows = this.db
      .select({
        env: secretVersions.env,
        name: secretVersions.name,
        version: sql<number>`max(${secretVersions.version})`,
        versions: sql<number>`count(*)`,
      })
      .from(secretVersions)
      .where(env === undefined ? undefined : eq(secretVersions.env, env))
      .groupBy(secretVersions.env, secretVersions.name)
      .orderBy(secretVersions.env, secretVersions.name)
      .all();
    return rows.map((r) => this.info(r.env, r.name) as SecretInfo);
  }

  delete(name: string, ref: SecretRef = {}): void {
    checkSecretName(name);
    const env = checkEnvName(ref.env ?? DEFAULT_ENV);
    writeTransaction(this.sqlite, () => {
      const gone = this.db
        .delete(secretVersions)
        .where(and(eq(secretVersions.env, env), eq(secretVersions.name, name)))
        .run();
      if (gone.changes === 0) throw this.notFound(name, env);
      this.record("delete", { env, name, detail: `${gone.changes} version(s)` });
    });
  }

  audit(filter: { env?: string; name?: string; limit?: number } = {}): AuditEntry[] {
    const rows = this.db
      .select()
      .from(secretAudit)
      .where(
        and(
          ...(filter.env === undefined ? [] : [eq(secretAudit.env, filter.env)]),
          ...(filter.name === undefined ? [] : [eq(secretAudit.name, filter.name)]),
        ),
      )
      .orderBy(desc(secretAudit.id))
      .limit(Math.max(1, Math.min(filter.limit ?? 100, 100_000)))
      .all();
    return rows.map((r) => ({
      id: r.id,
      at: new Date(r.at),
      action: r.action as AuditEntry["action"],
      env: r.env ?? undefined,
      name: r.name ?? undefined,
      version: r.version ?? undefined,
      actor: r.actor,
      pid: r.pid,
      detail: r.detail,
    }));
  }

  rotateKey(next: SecretsKey): number {
    // The new key file is written aside, under the database's write lock
    // (so two rotations never share it): until the rename below, the old
    // file stays the key, and a reader finding it wrong tries this one.
    const pending = "file" in next ? `${next.file}.new` : undefined;
    let fresh: Buffer | undefined;
    let count = 0;
    writeTransaction(this.sqlite, () => {
      // Completes an earlier rotation cut short, if any, before writing ours.
      this.unlock(false);
      if (pending !== undefined) {
        fresh = randomBytes(32);
        writeKeyFile(pending, fresh, true);
      }
      try {
        const rows = this.db.select().from(secretVersions).all();
        const plain = rows.map((r) => this.unsealRaw(r));
        const salt = randomBytes(16);
        const key = fresh ?? stretch((next as { passphrase: string }).passphrase, salt);
        const keyId = randomUUID();
        const nonce = newNonce();
        this.db
          .update(secretKeyCheck)
          .set({
            keyId,
            salt,
            nonce,
            sealed: seal(key, nonce, Buffer.from(CHECK_TEXT), `check\0${keyId}`),
            createdAt: Date.now(),
          })
          .where(eq(secretKeyCheck.id, 1))
          .run();
        rows.forEach((r, i) => {
          const n = newNonce();
          this.db
            .update(secretVersions)
            .set({
              nonce: n,
              sealed: seal(key, n, plain[i] as Buffer, aad(r.env, r.name, r.version)),
            })
            .where(
              and(
                eq(secretVersions.env, r.env),
                eq(secretVersions.name, r.name),
                eq(secretVersions.version, r.version),
              ),
            )
            .run();
        });
        count = rows.length;
        this.record("rotate-key", { detail: `${count} value(s) sealed again` });
        this.key = { key, keyId };
      } catch (e) {
        if (pending !== undefined) fs.rmSync(pending, { force: true });
        throw e;
      }
    });
    if (pending !== undefined && "file" in next) {
      try {
        fs.renameSync(pending, next.file);
      } catch (e) {
        // Another process opening the store between the commit and here
        // completed the rotation itself: done, if the file is our key.
        const now =
          (e as NodeJS.ErrnoException).code === "ENOENT" ? readKeyFile(next.file) : undefined;
        if (now === undefined || fresh === undefined || !now.equals(fresh)) throw e;
      }
    }
    return count;
  }

  close(): void {
    this.sqlite.close();
  }

  // ---- internals -------------------------------------------------------

  private info(env: string, name: string): SecretInfo | undefined {
    const rows = this.db
      .select()
      .from(secretVersions)
      .where(and(eq(secretVersions.env, env), eq(secretVersions.name, name)))
      .orderBy(desc(secretVersions.version))
      .all();
    const top = rows[0];
    if (top === undefined) return undefined;
    return {
      env,
      name,
      version: top.version,
      versions: rows.length,
      updatedAt: new Date(top.createdAt),
      updatedBy: top.createdBy,
    };
  }

  private notFound(name: string, env: string, version?: number): SecretsError {
    const which = version === undefined ? "" : ` version ${version}`;
    return new SecretsError(
      "SLOTH_SECRET_NOT_FOUND",
      `no secret '${name}'${which} in environment '${env}'`,
      {
        hint: `list them with \`sloth-runner secrets list --env ${env}\`, or add it with \`sloth-runner secrets set ${name} --env ${env}\``,
        details: { name, env },
      },
    );
  }

  private unseal(row: typeof secretVersions.$inferSelect): string {
    this.unlock(false);
    return this.unsealRaw(row).toString("utf8");
  }

  private unsealRaw(row: typeof secretVersions.$inferSelect): Buffer {
    const { key } = this.unlock(false);
    const plain = open(key, row.nonce, row.sealed, aad(row.env, row.name, row.version));
    if (plain === undefined)
      throw new SecretsError(
        "SLOTH_SECRET_CORRUPT",
        `cannot open secret '${row.name}' version ${row.version} in environment '${row.env}': its sealed value does not match the key`,
        {
          hint: `its row in the database was altered or copied from elsewhere; set it again with \`sloth-runner secrets set ${row.name} --env ${row.env}\``,
          details: { name: row.name, env: row.env, version: row.version },
        },
      );
    return plain;
  }

  /** The key, checked against the database; with `create`, made when the database has none yet. */
  private unlock(create: boolean): { key: Buffer; keyId: string } {
    const row = this.db.select().from(secretKeyCheck).where(eq(secretKeyCheck.id, 1)).get();
    if (this.key && row && this.key.keyId === row.keyId) return this.key;
    this.key = undefined;
    const source = this.source;
    if (source === undefined)
      throw new SecretsError("SLOTH_SECRETS_KEY_MISSING", "no secrets key was given", {
        hint: "pass a key file or a passphrase (SLOTH_RUNNER_SECRETS_KEY)",
      });
    if (row === undefined) {
      if (!create)
        throw new SecretsError("SLOTH_SECRET_NOT_FOUND", "no secret has been set yet", {
          hint: "add one with `sloth-runner secrets set NAME`",
        });
      const salt = randomBytes(16);
      const key =
        "file" in source ? readOrCreateKeyFile(source.file) : stretch(source.passphrase, salt);
      const keyId = randomUUID();
      const nonce = newNonce();
      this.db
        .insert(secretKeyCheck)
        .values({
          id: 1,
          keyId,
          salt,
          nonce,
          sealed: seal(key, nonce, Buffer.from(CHECK_TEXT), `check\0${keyId}`),
          createdAt: Date.now(),
        })
        .run();
      this.key = { key, keyId };
      return this.key;
    }
    const fits = (key: Buffer) =>
      open(key, row.nonce, row.sealed, `check\0${row.keyId}`)?.toString() === CHECK_TEXT;
    if ("passphrase" in source) {
      const key = stretch(source.passphrase, row.salt);
      if (!fits(key)) throw wrongKey("the passphrase in SLOTH_RUNNER_SECRETS_KEY");
      this.key = { key, keyId: row.keyId };
      return this.key;
    }
    const key = readKeyFile(source.file);
    if (key !== undefined && fits(key)) {
      this.key = { key, keyId: row.keyId };
      return this.key;
    }
    // A rotation interrupted after its commit: the new key is still aside.
    const pending = readKeyFile(`${source.file}.new`);
    if (pending !== undefined && fits(pending)) {
      fs.renameSync(`${source.file}.new`, source.file);
      this.key = { key: pending, keyId: row.keyId };
      return this.key;
    }
    if (key === undefined)
      throw new SecretsError(
        "SLOTH_SECRETS_KEY_MISSING",
        `the secrets were sealed with a key that is not here: ${source.file} is missing`,
        {
          hint: "restore that file (from where you keep its backup), or set SLOTH_RUNNER_SECRETS_KEY if a passphrase sealed them",
          details: { file: source.file },
        },
      );
    throw wrongKey(source.file);
  }

  private record(
    action: AuditEntry["action"],
    what: { env?: string; name?: string; version?: number; detail?: string },
  ): void {
    this.db
      .insert(secretAudit)
      .values({
        at: Date.now(),
        action,
        env: what.env ?? null,
        name: what.name ?? null,
        version: what.version ?? null,
        actor: this.who,
        pid: process.pid,
        detail: what.detail ?? "",
      })
      .run();
  }
}

function wrongKey(what: string): SecretsError {
  return new SecretsError(
    "SLOTH_SECRETS_KEY_WRONG",
    `${what} does not open these secrets: they were sealed with another key`,
    {
      hint: "use the key they were sealed with (the key file, or the passphrase), or another data directory",
    },
  );
}

function readKeyFile(file: string): Buffer | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new SecretsError(
      "SLOTH_SECRETS_KEY_MISSING",
      `cannot read the secrets key ${file}: ${(e as Error).message}`,
      {
        hint: "fix its permissions (it must be readable by this user only)",
        cause: e,
      },
    );
  }
  const key = Buffer.from(text.trim(), "base64");
  if (key.length !== 32)
    throw new SecretsError(
      "SLOTH_SECRETS_KEY_WRONG",
      `${file} is not a secrets key (32 bytes, base64)`,
      {
        hint: "restore the key file it replaced",
        details: { file },
      },
    );
  return key;
}

function writeKeyFile(file: string, key: Buffer, replace: boolean): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  if (replace) fs.rmSync(file, { force: true });
  const fd = fs.openSync(file, "wx", 0o600);
  try {
    fs.writeSync(fd, `${key.toString("base64")}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The key in `file`, made (mode 0600) when there is none; another process making it first wins. */
function readOrCreateKeyFile(file: string): Buffer {
  const have = readKeyFile(file);
  if (have !== undefined) return have;
  try {
    writeKeyFile(file, randomBytes(32), false);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
  return readKeyFile(file) as Buffer;
}
