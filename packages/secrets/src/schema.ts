import { blob, index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** Every kept version of every secret, sealed: nothing here is readable without the key. */
export const secretVersions = sqliteTable(
  "secret_versions",
  {
    env: text("env").notNull(),
    name: text("name").notNull(),
    version: integer("version").notNull(),
    /** 12 random bytes, new for every sealing. */
    nonce: blob("nonce", { mode: "buffer" }).notNull(),
    /** AES-256-GCM ciphertext followed by its 16-byte tag; env, name and version are its associated data. */
    sealed: blob("sealed", { mode: "buffer" }).notNull(),
    createdAt: integer("created_at").notNull(),
    /** user@host of the process that set it. */
    createdBy: text("created_by").notNull(),
  },
  (t) => [primaryKey({ columns: [t.env, t.name, t.version] })],
);

/** Who did what to which secret, and when; never a value. */
export const secretAudit = sqliteTable(
  "secret_audit",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    at: integer("at").notNull(),
    /** set | get | delete | rotate-key | use */
    action: text("action").notNull(),
    env: text("env"),
    name: text("name"),
    version: integer("version"),
    actor: text("actor").notNull(),
    pid: integer("pid").notNull(),
    detail: text("detail").notNull().default(""),
  },
  (t) => [index("secret_audit_name").on(t.env, t.name, t.id)],
);

/** One row (id 1): what tells whether a key is the one the values were sealed with. */
export const secretKeyCheck = sqliteTable("secret_key_check", {
  id: integer("id").primaryKey(),
  /** Random per key; changes with every rotation. */
  keyId: text("key_id").notNull(),
  /** Salt for a passphrase key (scrypt). */
  salt: blob("salt", { mode: "buffer" }).notNull(),
  nonce: blob("nonce", { mode: "buffer" }).notNull(),
  /** A known text sealed with the key. */
  sealed: blob("sealed", { mode: "buffer" }).notNull(),
  createdAt: integer("created_at").notNull(),
});
