import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** The agent registry. Secrets are stored only as SHA-256 hashes. */
export const agents = sqliteTable("agents", {
  name: text("name").primaryKey(),
  /** Address the master dials. */
  address: text("address").notNull(),
  reportAddress: text("report_address").notNull().default(""),
  bindAddress: text("bind_address").notNull().default(""),
  port: integer("port").notNull(),
  version: text("version").notNull().default(""),
  /** JSON object of labels. */
  labels: text("labels").notNull().default("{}"),
  /** JSON object of system facts. */
  facts: text("facts").notNull().default("{}"),
  secretHash: text("secret_hash").notNull(),
  /** Whether the agent serves TLS. */
  tls: integer("tls", { mode: "boolean" }).notNull().default(false),
  status: text("status", { enum: ["active", "inactive", "unreachable"] }).notNull(),
  statusReason: text("status_reason").notNull().default(""),
  lastSeen: integer("last_seen").notNull(),
  registeredAt: integer("registered_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});
