import { index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * One row per stack. `state` is the stack's current state (JSON object):
 * what its last execution left, or what a restored snapshot held.
 */
export const stacks = sqliteTable("stacks", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  name: text("name").notNull().unique(),
  description: text("description").notNull().default(""),
  /** created | running | completed | failed */
  status: text("status").notNull(),
  /** JSON object. */
  state: text("state").notNull(),
  /** JSON list of the names of the stacks this one depends on. */
  dependsOn: text("depends_on").notNull(),
  /** The number of the last snapshot taken (0: none yet). */
  lastVersion: integer("last_version").notNull(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
  lastExecutionAt: integer("last_execution_at"),
  executionCount: integer("execution_count").notNull(),
  /** The run id of the last execution. */
  lastRunId: text("last_run_id"),
});

/** The lock of a stack, if held: one row at most per stack. */
export const stackLocks = sqliteTable("stack_locks", {
  stackId: integer("stack_id")
    .primaryKey()
    .references(() => stacks.id, { onDelete: "cascade" }),
  /** Random id of this holding: releases and renewals name it. */
  lockId: text("lock_id").notNull(),
  lockedBy: text("locked_by").notNull(),
  operation: text("operation").notNull(),
  reason: text("reason").notNull(),
  /** JSON object given by the holder. */
  metadata: text("metadata").notNull(),
  lockedAt: integer("locked_at").notNull(),
  /** Null: held until released. */
  expiresAt: integer("expires_at"),
  /** The holding process, so a lock left by a process that died is broken. */
  host: text("host").notNull(),
  pid: integer("pid").notNull(),
  bootId: text("boot_id"),
  pidStart: text("pid_start"),
});

/** Snapshots: the state and resources of a stack at a point, numbered v1, v2, ... */
export const stackVersions = sqliteTable(
  "stack_versions",
  {
    stackId: integer("stack_id")
      .notNull()
      .references(() => stacks.id, { onDelete: "cascade" }),
    version: integer("version").notNull(),
    creator: text("creator").notNull(),
    description: text("description").notNull(),
    /** JSON: { state, resources, dependsOn }. */
    content: text("content").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.stackId, t.version] })],
);

/**
 * Resources of a stack: what it should hold (`desired`), how to read what
 * it holds (`check`, a shell command printing it) and how to put it right
 * (`fix`); `actual` and `drift` are what the last detection found.
 */
export const stackResources = sqliteTable(
  "stack_resources",
  {
    stackId: integer("stack_id")
      .notNull()
      .references(() => stacks.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    type: text("type").notNull(),
    /** JSON value. */
    desired: text("desired").notNull(),
    check: text("check"),
    fix: text("fix"),
    /** JSON list of resource names of the same stack. */
    dependsOn: text("depends_on").notNull(),
    /** JSON value read by the last check; null before the first. */
    actual: text("actual"),
    /** JSON of the last detection's finding; null before the first. */
    drift: text("drift"),
    checkedAt: integer("checked_at"),
  },
  (t) => [primaryKey({ columns: [t.stackId, t.name] })],
);

/**
 * The audit trail. Events keep the stack's name rather than a reference, so
 * a destroyed stack's history (and its `stack.destroyed` event) stays.
 */
export const stackEvents = sqliteTable(
  "stack_events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    stack: text("stack").notNull(),
    type: text("type").notNull(),
    /** info | warning | error */
    severity: text("severity").notNull(),
    message: text("message").notNull(),
    /** Who or what caused it (user@host, a run id). */
    source: text("source").notNull(),
    /** JSON object. */
    data: text("data").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("stack_events_stack").on(t.stack, t.id)],
);
