import { fileURLToPath } from "node:url";
import {
  type Durability,
  migrateWithRetry,
  openSqliteWith,
  processGone as runnerGone,
  writeTransaction,
} from "@sloth/client/light";
import type { TaskOutput, Value } from "@sloth/workflow";
import { and, asc, desc, eq, inArray, lt, ne, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { HistoryError } from "./errors.js";
import { type RunRecorder, startRecorder } from "./recorder.js";
import { runs, runTasks } from "./schema.js";
import type {
  HistoryRunStatus,
  HistoryTaskStatus,
  ListRunsFilter,
  RunDetail,
  RunRecord,
  RunStart,
  SourceFile,
  TaskLogRecord,
  TaskRecord,
} from "./types.js";

/** Options of {@link openHistory}. */
export interface HistoryOptions {
  /** Path of history.db (created and migrated if needed). */
  path: string;
  /**
   * `normal` (default) syncs at WAL checkpoints: a power loss may drop the
   * last events, a crash of the runner loses nothing. `full` syncs on every
   * batch.
   */
  durability?: Durability | undefined;
  /** Bytes of each task's log kept, its tail (default 64 KiB). */
  logLimit?: number | undefined;
  /**
   * Least time between two writes of a run's queued events (default 20 ms):
   * events of one scheduler tick always go in one transaction, and a burst
   * of ticks is written together. A crash loses at most this much.
   */
  flushIntervalMs?: number | undefined;
}

/** The run history: written by recorders, read by the `runs` commands. */
export interface HistoryStore {
  /** Records a new run: inserts it (`running`) with its tasks (`pending`) now. */
  record(start: RunStart): RunRecorder;
  /** Runs, newest first. Runs whose runner died are reported (and stored) `interrupted`. */
  listRuns(filter?: ListRunsFilter): RunRecord[];
  /** One run with its tasks; `id` may be a unique prefix. Throws SLOTH_HISTORY_RUN_NOT_FOUND. */
  getRun(id: string): RunDetail;
  /**
   * Stored logs of a run's tasks (one task when `task` is given), in
   * declaration order, then the output of the workflow's own hooks
   * (`task` {@link HOOKS_LOG}, `hooks` true) when they wrote any.
   */
  taskLogs(id: string, task?: string): TaskLogRecord[];
  /** Deletes finished runs started before `olderThan`; returns their ids. */
  prune(olderThan: Date): string[];
  close(): void;
}

/** Default bytes of log kept per task. */
export const DEFAULT_LOG_LIMIT = 64 * 1024;

/** The name {@link HistoryStore.taskLogs} gives the output of the workflow's own hooks. */
export const HOOKS_LOG = "(workflow hooks)";

const MIGRATIONS = fileURLToPath(new URL("../drizzle", import.meta.url));

/** Opens history.db, migrating it to the current schema. */
export function openHistory(options: HistoryOptions): HistoryStore {
  const { sqlite, value: db } = openSqliteWith(
    options.path,
    { durability: options.durability ?? "normal" },
    (opened) => {
      const orm = drizzle(opened);
      migrateWithRetry(() => migrate(orm, { migrationsFolder: MIGRATIONS }));
      return orm;
    },
    "the run history",
    "move it aside (a new history starts; the old runs stay in the moved file), or run with --no-history",
  );
  const limits = {
    logLimit: options.logLimit ?? DEFAULT_LOG_LIMIT,
    flushIntervalMs: options.flushIntervalMs ?? 20,
  };

  /** Ends runs whose runner died: nothing else ever will. */
  const reconcile = (): void => {
    const stale = db
      .select({
        id: runs.id,
        pid: runs.pid,
        host: runs.host,
        bootId: runs.bootId,
        pidStart: runs.pidStart,
      })
      .from(runs)
      .where(eq(runs.status, "running"))
      .all()
      .filter(runnerGone);
    if (stale.length === 0) return;
    writeTransaction(sqlite, () => {
      for (const r of stale) {
        db.update(runs)
          .set({
            status: "interrupted",
            message: `the runner (pid ${r.pid}) stopped before the run ended`,
          })
          .where(and(eq(runs.id, r.id), eq(runs.status, "running")))
          .run();
        db.update(runTasks)
          .set({ status: "interrupted" })
          .where(and(eq(runTasks.runId, r.id), inArray(runTasks.status, ["running", "retrying"])))
          .run();
      }
    });
  };

  const resolveId = (id: string): string => {
    const exact = db.select({ id: runs.id }).from(runs).where(eq(runs.id, id)).get();
    if (exact) return exact.id;
    const found = db
      .select({ id: runs.id })
      .from(runs)
      .where(sql`substr(${runs.id}, 1, ${id.length}) = ${id}`)
      .limit(6)
      .all();
    if (found.length === 1 && id !== "") return found[0]!.id;
    if (found.length > 1 && id !== "") {
      throw new HistoryError("SLOTH_HISTORY_AMBIGUOUS_ID", `run id '${id}' is ambiguous`, {
        hint: `it starts ${found.length > 5 ? "more than 5" : found.length} runs: give more characters`,
        details: { id, matches: found.map((r) => r.id) },
      });
    }
    throw new HistoryError("SLOTH_HISTORY_RUN_NOT_FOUND", `run '${id}' not found`, {
      hint: "run `sloth-runner runs list` to see the recorded runs",
      details: { id },
    });
  };

  return {
    record: (start) => startRecorder(sqlite, start, limits),
    listRuns(filter = {}) {
      reconcile();
      const where = and(
        filter.workflow === undefined ? undefined : eq(runs.workflow, filter.workflow),
        filter.status === undefined ? undefined : eq(runs.status, filter.status),
      );
      return db
        .select()
        .from(runs)
        .where(where)
        .orderBy(desc(runs.startedAt), desc(runs.id))
        .limit(filter.limit ?? 50)
        .all()
        .map(toRun);
    },
    getRun(id) {
      reconcile();
      const runId = resolveId(id);
      const run = db.select().from(runs).where(eq(runs.id, runId)).get();
      if (!run) throw new Error(`run '${runId}' vanished`);
      const tasks = db
        .select()
        .from(runTasks)
        .where(eq(runTasks.runId, runId))
        .orderBy(asc(runTasks.position))
        .all()
        .map(toTask);
      return { ...toRun(run), tasks };
    },
    taskLogs(id, task) {
      const runId = resolveId(id);
      const rows = db
        .select({ name: runTasks.name, log: runTasks.log, size: runTasks.logSize })
        .from(runTasks)
        .where(
          and(eq(runTasks.runId, runId), task === undefined ? undefined : eq(runTasks.name, task)),
        )
        .orderBy(asc(runTasks.position))
        .all();
      if (task !== undefined && task !== HOOKS_LOG && rows.length === 0) {
        throw new HistoryError(
          "SLOTH_HISTORY_TASK_NOT_FOUND",
          `task '${task}' not found in run '${runId}'`,
          {
            hint: `run \`sloth-runner runs show ${runId}\` to see its tasks`,
            details: { runId, task },
          },
        );
      }
      const out: TaskLogRecord[] = rows.map((r) => ({
        task: r.name,
        text: r.log,
        size: r.size,
        truncated: Buffer.byteLength(r.log) < r.size,
      }));
      if (task === undefined || task === HOOKS_LOG) {
        const h = db
          .select({ log: runs.log, size: runs.logSize })
          .from(runs)
          .where(eq(runs.id, runId))
          .get();
        if (h && (h.size > 0 || task === HOOKS_LOG))
          out.push({
            task: HOOKS_LOG,
            hooks: true,
            text: h.log,
            size: h.size,
            truncated: Buffer.byteLength(h.log) < h.size,
          });
      }
      return out;
    },
    prune(olderThan) {
      reconcile();
      return writeTransaction(sqlite, () =>
        db
          .delete(runs)
          .where(and(lt(runs.startedAt, olderThan.getTime()), ne(runs.status, "running")))
          .returning({ id: runs.id })
          .all()
          .map((r) => r.id),
      );
    },
    close: () => sqlite.close(),
  };
}

type RunRow = typeof runs.$inferSelect;
type TaskRow = typeof runTasks.$inferSelect;

const orUndefined = <T>(v: T | null): T | undefined => (v === null ? undefined : v);
const date = (ms: number | null): Date | undefined => (ms === null ? undefined : new Date(ms));

function toRun(r: RunRow): RunRecord {
  return {
    id: r.id,
    workflow: r.workflow,
    file: orUndefined(r.file),
    fileHash: orUndefined(r.fileHash),
    values: JSON.parse(r.values) as Record<string, Value>,
    params: JSON.parse(r.params) as Record<string, Value>,
    status: r.status as HistoryRunStatus,
    message: orUndefined(r.message),
    startedAt: new Date(r.startedAt),
    endedAt: date(r.endedAt),
    durationMs: orUndefined(r.durationMs),
    pid: r.pid,
    host: r.host,
    resumedFrom: orUndefined(r.resumedFrom),
    sources: r.sources ? (JSON.parse(r.sources) as SourceFile[]) : [],
    stack: orUndefined(r.stack),
  };
}

function toTask(t: TaskRow): TaskRecord {
  return {
    name: t.name,
    status: t.status as HistoryTaskStatus,
    attempts: t.attempts,
    startedAt: date(t.startedAt),
    endedAt: date(t.endedAt),
    durationMs: orUndefined(t.durationMs),
    message: orUndefined(t.message),
    output: t.output === null ? undefined : (JSON.parse(t.output) as TaskOutput),
    reused: t.reused,
    ...(t.agents === null ? {} : { agents: JSON.parse(t.agents) as string[] }),
    logSize: t.logSize,
  };
}
