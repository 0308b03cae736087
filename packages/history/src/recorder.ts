import { processIdentity as runnerIdentity, writeTransaction } from "@sloth/client/light";
import type { RunEvent, RunResult, TaskOutput } from "@sloth/workflow";
import type Database from "better-sqlite3";
import type { HistoryTaskStatus, RunStart } from "./types.js";

/** Feeds one run's events into history.db. */
export interface RunRecorder {
  /** The recorded run's id. */
  readonly runId: string;
  /**
   * Takes one event of the run; cheap and synchronous. Events are written
   * together, one transaction per scheduler tick; never throws (a failed
   * write is kept in {@link RunRecorder.error}).
   */
  event(event: RunEvent): void;
  /** Writes what is queued now. */
  flush(): void;
  /** Writes the run's end from its result (tasks never reached stay `pending`) and flushes. */
  finish(result: RunResult): void;
  /** The first write error, if any: history is best effort and never stops a run. */
  readonly error: Error | undefined;
}

/** Options of a recorder, from `HistoryStore.record`. */
export interface RecorderLimits {
  /** Bytes of each task's log kept (its tail). */
  logLimit: number;
  /** Least time between two writes of queued events. */
  flushIntervalMs: number;
}

interface TaskRow {
  name: string;
  position: number;
  status: HistoryTaskStatus;
  attempts: number;
  startedAt: number | null;
  endedAt: number | null;
  durationMs: number | null;
  message: string | null;
  output: string | null;
  reused: boolean;
  /** JSON list of agents, or null when it ran here. */
  agents: string | null;
  log: string;
  logSize: number;
}

interface RunEnd {
  status: string;
  message: string | null;
  endedAt: number;
  durationMs: number;
}

const ENDS: Partial<Record<RunEvent["type"], string>> = {
  "workflow.completed": "succeeded",
  "workflow.failed": "failed",
  "workflow.aborted": "aborted",
  "workflow.interrupted": "interrupted",
};

/** Inserts the run and its pending tasks at once, then records events in batches. */
export function startRecorder(
  db: Database.Database,
  start: RunStart,
  limits: RecorderLimits,
): RunRecorder {
  const now = (start.startedAt ?? new Date()).getTime();
  const reused = new Set(start.reused ?? []);
  const tasks = new Map<string, TaskRow>();
  start.tasks.forEach((name, position) => {
    tasks.set(name, blank(name, position));
  });
  const insertRun = db.prepare(
    `INSERT INTO history_runs (id, workflow, file, file_hash, "values", params, status, started_at, pid, host, boot_id, pid_start, resumed_from, sources, stack)
     VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const upsertTask = db.prepare(
    `INSERT INTO history_tasks (run_id, name, position, status, attempts, started_at, ended_at, duration_ms, message, output, reused, agents, log, log_size)
     VALUES (@runId, @name, @position, @status, @attempts, @startedAt, @endedAt, @durationMs, @message, @output, @reused, @agents, @log, @logSize)
     ON CONFLICT (run_id, name) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
       started_at = excluded.started_at, ended_at = excluded.ended_at, duration_ms = excluded.duration_ms,
       message = excluded.message, output = excluded.output, reused = excluded.reused, agents = excluded.agents,
       log = excluded.log, log_size = excluded.log_size`,
  );
  const hookLog = db.prepare("UPDATE history_runs SET log = ?, log_size = ? WHERE id = ?");
  // The workflow's own hooks write here (kept like a task's log).
  const hooks = blank("", -1);
  let hooksDirty = false;
  const endRun = db.prepare(
    "UPDATE history_runs SET status = ?, message = ?, ended_at = ?, duration_ms = ? WHERE id = ?",
  );
  const runId = start.id;
  const rowParams = (t: TaskRow) => ({ ...t, runId, reused: t.reused ? 1 : 0 });
  const runner = runnerIdentity(start.pid);
  writeTransaction(db, () => {
    insertRun.run(
      runId,
      start.workflow,
      start.file ?? null,
      start.fileHash ?? null,
      JSON.stringify(start.values ?? {}),
      JSON.stringify(start.params ?? {}),
      now,
      runner.pid,
      runner.host,
      runner.bootId ?? null,
      runner.pidStart ?? null,
      start.resumedFrom ?? null,
      start.sources ? JSON.stringify(start.sources) : null,
      start.stack ?? null,
    );
    for (const t of tasks.values()) upsertTask.run(rowParams(t));
  });

  const dirty = new Set<TaskRow>();
  let end: RunEnd | undefined;
  let sawEnd = false;
  // Exactly one of these is pending at a time; clearing one with the other's
  // function corrupts Node's immediate queue, so they are kept apart.
  let immediate: NodeJS.Immediate | undefined;
  let timeout: NodeJS.Timeout | undefined;
  let lastFlush = 0;
  let error: Error | undefined;
  let finished = false;

  const task = (name: string): TaskRow => {
    let t = tasks.get(name);
    if (!t) {
      t = blank(name, tasks.size);
      tasks.set(name, t);
    }
    dirty.add(t);
    return t;
  };

  const flush = (): void => {
    if (immediate) clearImmediate(immediate);
    if (timeout) clearTimeout(timeout);
    immediate = undefined;
    timeout = undefined;
    lastFlush = performance.now();
    if (dirty.size === 0 && !end && !hooksDirty) return;
    try {
      writeTransaction(db, () => {
        for (const t of dirty) {
          if (t.log.length > 0) t.log = tail(t.log, limits.logLimit);
          upsertTask.run(rowParams(t));
        }
        if (hooksDirty) {
          if (hooks.log.length > 0) hooks.log = tail(hooks.log, limits.logLimit);
          hookLog.run(hooks.log, hooks.logSize, runId);
        }
        if (end) endRun.run(end.status, end.message, end.endedAt, end.durationMs, runId);
      });
    } catch (e) {
      error ??= e as Error;
    }
    dirty.clear();
    hooksDirty = false;
    end = undefined;
  };

  const apply = (e: RunEvent): void => {
    switch (e.type) {
      case "task.started": {
        const t = task(e.task);
        t.status = "running";
        t.attempts = e.attempt;
        t.startedAt ??= e.time;
        return;
      }
      case "task.retrying": {
        const t = task(e.task);
        t.status = "retrying";
        t.message = e.message;
        return;
      }
      case "task.timed_out":
        task(e.task).message = `timed out after ${e.timeoutMs} ms (attempt ${e.attempt})`;
        return;
      case "task.succeeded":
      case "task.failed": {
        const t = task(e.task);
        t.status = e.type === "task.succeeded" ? "succeeded" : "failed";
        t.attempts = e.attempts;
        t.durationMs = e.durationMs;
        t.endedAt = e.time;
        t.startedAt ??= e.time - e.durationMs;
        t.message = e.message ?? null;
        t.output = e.output === undefined ? null : JSON.stringify(e.output satisfies TaskOutput);
        t.reused = e.type === "task.succeeded" && e.attempts === 0 && reused.has(e.task);
        t.agents = e.agents ? JSON.stringify(e.agents) : null;
        return;
      }
      case "task.skipped": {
        const t = task(e.task);
        t.status = "skipped";
        t.message = e.reason;
        t.endedAt = e.time;
        return;
      }
      case "task.cancelled": {
        const t = task(e.task);
        t.status = "cancelled";
        t.message = e.reason;
        t.durationMs = e.durationMs;
        t.endedAt = e.time;
        return;
      }
      case "task.log":
        appendLog(task(e.task), e.text, limits.logLimit);
        return;
      case "workflow.log":
        appendLog(hooks, e.text, limits.logLimit);
        hooksDirty = true;
        return;
      case "workflow.started":
        return;
      default: {
        const status = ENDS[e.type];
        if (status === undefined) return;
        const message = "message" in e ? e.message : null;
        end = { status, message, endedAt: e.time, durationMs: e.durationMs };
        sawEnd = true;
      }
    }
  };

  return {
    runId,
    event(e) {
      if (finished) return;
      apply(e);
      if (immediate || timeout) return;
      // Everything the scheduler emits in this turn goes in one transaction,
      // and a fast run (a chain of quick tasks is a tick per task) writes at
      // most every flushIntervalMs, so history stays cheap.
      const wait = lastFlush + limits.flushIntervalMs - performance.now();
      if (wait <= 0) immediate = setImmediate(flush);
      else timeout = setTimeout(flush, wait);
    },
    flush,
    finish(result) {
      if (finished) return;
      if (!sawEnd) {
        end = {
          status: result.status,
          message: result.message ?? null,
          endedAt: Date.now(),
          durationMs: result.durationMs,
        };
      }
      flush();
      finished = true;
    },
    get error() {
      return error;
    },
  };
}

function blank(name: string, position: number): TaskRow {
  return {
    name,
    position,
    status: "pending",
    attempts: 0,
    startedAt: null,
    endedAt: null,
    durationMs: null,
    message: null,
    output: null,
    reused: false,
    agents: null,
    log: "",
    logSize: 0,
  };
}

/** Appends to a task's log, keeping at most `limit` bytes of its tail. */
function appendLog(t: TaskRow, text: string, limit: number): void {
  const bytes = Buffer.byteLength(text);
  t.logSize += bytes;
  t.log += text;
  // Trim only past twice the limit, so a chatty task is not cut on every chunk.
  if (t.log.length > limit * 2) t.log = tail(t.log, limit);
}

/** The last `limit` bytes of `s` (whole characters). */
export function tail(s: string, limit: number): string {
  if (Buffer.byteLength(s) <= limit) return s;
  const buf = Buffer.from(s);
  let start = buf.length - limit;
  // Step past UTF-8 continuation bytes so no character is split.
  while (start < buf.length && ((buf[start] ?? 0) & 0xc0) === 0x80) start++;
  return buf.subarray(start).toString("utf8");
}
