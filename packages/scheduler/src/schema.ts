import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** One row per schedule: when to run which workflow, and how. */
export const schedules = sqliteTable("schedules", {
  name: text("name").primaryKey(),
  /** Cron expression: 5 fields, or 6 with seconds first, or a nickname such as @daily. */
  cron: text("cron").notNull(),
  /** IANA time zone the expression is read in; null: the scheduler's local time. */
  timezone: text("timezone"),
  /** JSON RunSpec: the workflow file and the run's options. */
  spec: text("spec").notNull(),
  description: text("description").notNull().default(""),
  enabled: integer("enabled", { mode: "boolean" }).notNull(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

/** Each time a schedule fired (or was run by hand, or skipped), and how it ended. */
export const scheduleRuns = sqliteTable(
  "schedule_runs",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    schedule: text("schedule").notNull(),
    /** schedule | manual */
    trigger: text("trigger").notNull(),
    /** The time the schedule was due (ms); null for manual runs. */
    dueAt: integer("due_at"),
    startedAt: integer("started_at").notNull(),
    endedAt: integer("ended_at"),
    /** running | succeeded | failed | skipped | lost */
    status: text("status").notNull(),
    exitCode: integer("exit_code"),
    /** The workflow run's id in history.db, when it printed one. */
    runId: text("run_id"),
    message: text("message").notNull().default(""),
    /** The process that started it, to tell a run whose scheduler died. */
    pid: integer("pid"),
    host: text("host"),
    bootId: text("boot_id"),
    pidStart: text("pid_start"),
    /** The run's own process (the launcher's child), while it may still run. */
    childPid: integer("child_pid"),
    childStart: text("child_start"),
  },
  (t) => [index("schedule_runs_schedule").on(t.schedule, t.id)],
);

/** The scheduler loop holding this file, if any: one row at most (id 1). */
export const schedulerLock = sqliteTable("scheduler_lock", {
  id: integer("id").primaryKey(),
  /** Random per claim: two loops of one process are told apart. */
  token: text("token").notNull(),
  pid: integer("pid").notNull(),
  host: text("host").notNull(),
  bootId: text("boot_id"),
  pidStart: text("pid_start"),
  startedAt: integer("started_at").notNull(),
});
