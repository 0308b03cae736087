import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** Named masters known to the CLI. Paths only: never secrets. */
export const masters = sqliteTable("masters", {
  name: text("name").primaryKey(),
  address: text("address").notNull(),
  description: text("description").notNull().default(""),
  isDefault: integer("is_default", { mode: "boolean" }).notNull().default(false),
  tokenFile: text("token_file"),
  tlsCert: text("tls_cert"),
  tlsKey: text("tls_key"),
  tlsCa: text("tls_ca"),
  createdAt: integer("created_at", { mode: "number" }).notNull(),
  updatedAt: integer("updated_at", { mode: "number" }).notNull(),
});
