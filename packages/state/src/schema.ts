import { integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Key-value entries. `value` is JSON text; `expires_at` (ms since epoch) is
 * null for keys without a TTL. Expired rows are invisible to every read and
 * purged lazily, so readers never depend on a sweeper having run.
 */
export const entries = sqliteTable(
  "state_entries",
  {
    namespace: text("namespace").notNull(),
    key: text("key").notNull(),
    value: text("value").notNull(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    expiresAt: integer("expires_at"),
  },
  (t) => [primaryKey({ columns: [t.namespace, t.key] })],
);

/** Current lock holders. A row past `expires_at` is free to take over. */
export const locks = sqliteTable(
  "state_locks",
  {
    namespace: text("namespace").notNull(),
    name: text("name").notNull(),
    owner: text("owner").notNull(),
    token: integer("token").notNull(),
    acquiredAt: integer("acquired_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.namespace, t.name] })],
);

/**
 * The last fencing token issued per lock. Kept apart from `state_locks` and
 * never deleted, so tokens keep growing across releases, forced unlocks and
 * restarts.
 */
export const fences = sqliteTable(
  "state_fences",
  {
    namespace: text("namespace").notNull(),
    name: text("name").notNull(),
    token: integer("token").notNull(),
  },
  (t) => [primaryKey({ columns: [t.namespace, t.name] })],
);
