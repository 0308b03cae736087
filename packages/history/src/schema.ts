import { index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * One row per run of one workflow. `status` is what the runner last wrote:
 * a run left `running` by a process that died is reported `interrupted` on
 * read (and rewritten so), since nothing else will ever end it.
 */
export const runs = sqliteTable(
  "history_runs",
  {
    id: text("id").primaryKey(),
    workflow: text("workflow").notNull(),
    /** Absolute path of the workflow file; null for models built in code. */
    file: text("file"),
    /** sha256 (hex) of the file's bytes when the run started. */
    fileHash: text("file_hash"),
    /** JSON of the run's values and params. */
    values: text("values").notNull(),
    params: text("params").notNull(),
    status: text("status").notNull(),
    message: text("message"),
    startedAt: integer("started_at").notNull(),
    endedAt: integer("ended_at"),
    durationMs: integer("duration_ms"),
    pid: integer("pid").notNull(),
    host: text("host").notNull(),
    /**
     * The host's boot id and the runner's start time (Linux), so a pid
     * reused after a reboot or by a later process is not taken for the runner.
     */
    bootId: text("boot_id"),
    pidStart: text("pid_start"),
    resumedFrom: text("resumed_from"),
    /**
     * JSON list of the other files the workflow read when it loaded
     * (`require`, `dofile`): `{ path, hash }`, paths relative to the
     * workflow file's directory when inside it.
     */
    sources: text("sources"),
    /** The stack the run deployed (`sloth-runner run STACK -f FILE`), if any. */
    stack: text("stack"),
    /** The tail of the output of the workflow's own hooks (on_start, on_task_start, ...). */
    log: text("log").notNull().default(""),
    /** Bytes the hooks wrote in all. */
    logSize: integer("log_size").notNull().default(0),
  },
  (t) => [
    index("history_runs_started").on(t.startedAt),
    index("history_runs_workflow").on(t.workflow, t.startedAt),
  ],
);

/**
 * Each task of a run, in declaration order (`position`). `log` keeps the
 * last bytes of the task's output; `log_size` counts everything it wrote.
 */
export const runTasks = sqliteTable(
  "history_tasks",
  {
    runId: text("run_id")
      .notNull()
      .references(() => runs.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    position: integer("position").notNull(),
    status: text("status").notNull(),
    attempts: integer("attempts").notNull(),
    startedAt: integer("started_at"),
    endedAt: integer("ended_at"),
    durationMs: integer("duration_ms"),
    message: text("message"),
    /** JSON of the output table, when the task produced one. */
    output: text("output"),
    /** True when the output was taken from the run this one resumes. */
    reused: integer("reused", { mode: "boolean" }).notNull(),
    /** JSON list of the agents its last attempt ran on; null when it ran here. */
    agents: text("agents"),
    log: text("log").notNull(),
    logSize: integer("log_size").notNull(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.name] })],
);
