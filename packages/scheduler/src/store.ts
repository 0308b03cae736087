import { randomUUID } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  type Durability,
  migrateWithRetry,
  openSqliteWith,
  processGone,
  processIdentity,
  writeTransaction,
} from "@sloth/client/light";
import type Database from "better-sqlite3";
import { Cron } from "croner";
import { and, desc, eq } from "drizzle-orm";
import { type BetterSQLite3Database, drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { SchedulerError } from "./errors.js";
import { scheduleRuns, schedulerLock, schedules } from "./schema.js";
import type {
  RunSpec,
  Schedule,
  ScheduleRun,
  ScheduleRunStatus,
  SchedulerHolder,
} from "./types.js";

const MIGRATIONS = fileURLToPath(new URL("../drizzle", import.meta.url));

/** Options of {@link openScheduleStore}. */
export interface ScheduleStoreOptions {
  /** Path of schedules.db (created and migrated if needed). */
  path: string;
  /** `full` (default) syncs every change; `normal` syncs at WAL checkpoints. */
  durability?: Durability | undefined;
}

/** What {@link ScheduleStore.add} takes. */
export interface ScheduleInput {
  name: string;
  cron: string;
  /** IANA time zone the expression is read in (default: the scheduler's local time). */
  timezone?: string | undefined;
  spec: RunSpec;
  description?: string | undefined;
  /** Default true. */
  enabled?: boolean | undefined;
}

/** What {@link ScheduleStore.update} changes; absent fields stay. */
export interface ScheduleChanges {
  cron?: string | undefined;
  /** null: back to the scheduler's local time. */
  timezone?: string | null | undefined;
  spec?: RunSpec | undefined;
  description?: string | undefined;
  enabled?: boolean | undefined;
}

/** How a run ended, as {@link ScheduleStore.finishRun} records it. */
export interface RunEnd {
  status: Exclude<ScheduleRunStatus, "running" | "skipped">;
  exitCode?: number | undefined;
  runId?: string | undefined;
  message?: string | undefined;
}

/** Schedules and their runs, in SQLite. Safe to use from several processes. */
export interface ScheduleStore {
  add(input: ScheduleInput): Schedule;
  update(name: string, changes: ScheduleChanges): Schedule;
  /** The schedule; SLOTH_SCHEDULE_NOT_FOUND when there is none. */
  get(name: string): Schedule;
  find(name: string): Schedule | undefined;
  /** Every schedule, by name. */
  list(): Schedule[];
  /**
   * Every schedule without its next slot and last run (cheap: what the
   * scheduler loop reads).
   */
  definitions(): Schedule[];
  /** Changes when another connection changed the file: the loop reads schedules again then. */
  changeCounter(): number;
  /** Deletes the schedule and its run history; SLOTH_SCHEDULE_NOT_FOUND when there is none. */
  delete(name: string): void;
  /**
   * Records the start of a run of `name` by this process. SLOTH_SCHEDULE_BUSY
   * while another run of it still goes (its scheduler or its own process
   * alive), so no two runs of a schedule overlap, whoever starts them.
   */
  startRun(name: string, trigger: "schedule" | "manual", dueAt?: Date): ScheduleRun;
  /** Records the process of run `id`, so a run whose scheduler died is still seen running. */
  setChild(id: number, pid: number): void;
  /** Records how run `id` ended. */
  finishRun(id: number, end: RunEnd): ScheduleRun;
  /** Records a slot of `name` that was not run, and why. */
  skip(name: string, dueAt: Date, message: string): ScheduleRun;
  /** The runs of `name`, newest first. */
  runs(name: string, limit?: number): ScheduleRun[];
  /**
   * Marks runs left `running` whose scheduler and own process are both gone
   * as `lost`; how many.
   */
  settleLost(): number;
  /**
   * Claims the schedules for this process's scheduler loop: one loop per
   * file, so no slot runs twice. SLOTH_SCHEDULER_RUNNING while another
   * live process holds it (a holder that is gone is replaced). Returns the
   * release.
   */
  claimScheduler(): () => void;
  /** The scheduler loop holding the file, if its process still runs. */
  scheduler(): SchedulerHolder | undefined;
  close(): void;
}

/** Schedule names: what a file name or a CLI argument can carry safely. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const MAX_DESCRIPTION = 1000;

/** Checks a schedule name; returns it. */
export function checkScheduleName(name: unknown): string {
  if (typeof name !== "string" || !NAME.test(name))
    throw new SchedulerError(
      "SLOTH_INVALID_ARGUMENT",
      `invalid schedule name ${JSON.stringify(name)}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
      { hint: "choose a name such as nightly-backup" },
    );
  return name;
}

/**
 * The next slot of `cron` (in `timezone`, else local time) strictly after
 * `from`; undefined when there is none. Throws SLOTH_INVALID_ARGUMENT for a
 * bad expression or time zone.
 */
export function nextRunOf(
  cron: string,
  timezone: string | undefined,
  from = new Date(),
): Date | undefined {
  const job = cronOf(cron, timezone);
  try {
    return job.nextRun(from) ?? undefined;
  } catch (e) {
    throw badTimezone(timezone, e);
  }
}

/** The next `n` slots after `from`. */
export function nextRunsOf(
  cron: string,
  timezone: string | undefined,
  n: number,
  from = new Date(),
): Date[] {
  const job = cronOf(cron, timezone);
  try {
    return job.nextRuns(n, from);
  } catch (e) {
    throw badTimezone(timezone, e);
  }
}

/** Like cronOf, and refuses an expression that never fires from now on. */
function firingCron(cron: string, timezone: string | undefined): Cron {
  const job = cronOf(cron, timezone);
  let next: Date | null;
  try {
    next = job.nextRun();
  } catch (e) {
    throw badTimezone(timezone, e);
  }
  if (next === null)
    throw new SchedulerError(
      "SLOTH_INVALID_ARGUMENT",
      `invalid cron expression ${JSON.stringify(cron)}: it never fires (such as February 31st, or a past year)`,
      { hint: "check the day, month and year fields" },
    );
  return job;
}

function cronOf(cron: string, timezone: string | undefined): Cron {
  if (typeof cron !== "string" || cron.trim() === "")
    throw new SchedulerError("SLOTH_INVALID_ARGUMENT", "invalid cron expression: it is empty", {
      hint: 'give 5 fields (minute hour day month weekday), such as "*/15 * * * *", or 6 with seconds first',
    });
  if (timezone !== undefined) checkTimezone(timezone);
  try {
    return new Cron(cron.trim(), { paused: true, ...(timezone ? { timezone } : {}) });
  } catch (e) {
    const why = (e instanceof Error ? e.message : String(e)).replace(/^CronPattern: /, "");
    throw new SchedulerError(
      "SLOTH_INVALID_ARGUMENT",
      `invalid cron expression ${JSON.stringify(cron)}: ${why}`,
      {
        hint: 'give 5 fields (minute hour day month weekday), such as "*/15 * * * *", or 6 with seconds first, or @hourly, @daily, @weekly, @monthly',
        cause: e,
      },
    );
  }
}

function checkTimezone(timezone: string): void {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
  } catch (e) {
    throw badTimezone(timezone, e);
  }
}

function badTimezone(timezone: string | undefined, cause: unknown): SchedulerError {
  return new SchedulerError(
    "SLOTH_INVALID_ARGUMENT",
    `invalid time zone ${JSON.stringify(timezone)}`,
    {
      hint: "give an IANA time zone such as Europe/Berlin or UTC",
      cause,
    },
  );
}

function checkSpec(spec: RunSpec): RunSpec {
  if (spec === null || typeof spec !== "object")
    throw new SchedulerError("SLOTH_INVALID_ARGUMENT", "invalid schedule: it has no workflow file");
  if (typeof spec.file !== "string" || !path.isAbsolute(spec.file))
    throw new SchedulerError(
      "SLOTH_INVALID_ARGUMENT",
      `invalid schedule: the workflow file ${JSON.stringify(spec.file)} is not an absolute path`,
    );
  for (const v of spec.values ?? [])
    if (typeof v !== "string" || !path.isAbsolute(v))
      throw new SchedulerError(
        "SLOTH_INVALID_ARGUMENT",
        `invalid schedule: the values file ${JSON.stringify(v)} is not an absolute path`,
      );
  // Only the known fields, so the stored JSON stays what the runs use.
  if (spec.cwd !== undefined && (typeof spec.cwd !== "string" || !path.isAbsolute(spec.cwd)))
    throw new SchedulerError(
      "SLOTH_INVALID_ARGUMENT",
      `invalid schedule: the folder ${JSON.stringify(spec.cwd)} is not an absolute path`,
    );
  const out: RunSpec = { file: spec.file };
  if (spec.cwd) out.cwd = spec.cwd;
  if (spec.values?.length) out.values = [...spec.values];
  if (spec.params && Object.keys(spec.params).length) out.params = { ...spec.params };
  if (spec.workflow) out.workflow = spec.workflow;
  if (spec.group) out.group = spec.group;
  if (spec.tasks?.length) out.tasks = [...spec.tasks];
  if (spec.stack) out.stack = spec.stack;
  if (spec.secretsEnv) out.secretsEnv = spec.secretsEnv;
  return out;
}

function checkDescription(d: string | undefined): string {
  const text = d ?? "";
  if (text.length > MAX_DESCRIPTION)
    throw new SchedulerError(
      "SLOTH_INVALID_ARGUMENT",
      `invalid description: ${text.length} characters, at most ${MAX_DESCRIPTION}`,
    );
  return text;
}

/** Opens (creating and migrating) a schedules database. */
export function openScheduleStore(options: ScheduleStoreOptions): ScheduleStore {
  const { sqlite, value: db } = openSqliteWith(
    options.path,
    {
      durability: options.durability ?? "full",
      busyTimeoutMs: 30_000,
    },
    (opened) => {
      const orm = drizzle(opened);
      migrateWithRetry(() => migrate(orm, { migrationsFolder: MIGRATIONS }));
      return orm;
    },
    "the schedules database",
    "move it aside (a new, empty one is created; the moved file keeps the old schedules)",
  );
  return new SqliteScheduleStore(sqlite, db);
}

type ScheduleRow = typeof schedules.$inferSelect;
type RunRow = typeof scheduleRuns.$inferSelect;

function toRun(r: RunRow): ScheduleRun {
  return {
    id: r.id,
    schedule: r.schedule,
    trigger: r.trigger === "manual" ? "manual" : "schedule",
    dueAt: r.dueAt === null ? undefined : new Date(r.dueAt),
    startedAt: new Date(r.startedAt),
    endedAt: r.endedAt === null ? undefined : new Date(r.endedAt),
    status: r.status as ScheduleRunStatus,
    exitCode: r.exitCode ?? undefined,
    runId: r.runId ?? undefined,
    message: r.message,
    childPid: r.childPid ?? undefined,
  };
}

/** Runs kept per schedule: older ones are pruned as new ones are recorded. */
const KEEP_RUNS = 1000;

/** True while a `running` row's scheduler or own process may still run. */
function runAlive(r: RunRow): boolean {
  const scheduler =
    r.pid !== null &&
    r.host !== null &&
    !processGone({ pid: r.pid, host: r.host, bootId: r.bootId, pidStart: r.pidStart });
  const child =
    r.childPid !== null &&
    r.host !== null &&
    !processGone({ pid: r.childPid, host: r.host, bootId: r.bootId, pidStart: r.childStart });
  return scheduler || child;
}

class SqliteScheduleStore implements ScheduleStore {
  constructor(
    private readonly sqlite: Database.Database,
    private readonly db: BetterSQLite3Database,
  ) {}

  close(): void {
    this.sqlite.close();
  }

  private tx<T>(fn: () => T): T {
    return writeTransaction(this.sqlite, fn);
  }

  private definition(r: ScheduleRow): Schedule {
    let spec: RunSpec;
    let error: string | undefined;
    try {
      spec = JSON.parse(r.spec) as RunSpec;
      if (spec === null || typeof spec !== "object" || typeof spec.file !== "string")
        throw new Error("no workflow file");
    } catch (e) {
      spec = { file: "" };
      error = `its stored run options cannot be read (${e instanceof Error ? e.message : String(e)}): update it with -f FILE, or delete it`;
    }
    return {
      name: r.name,
      cron: r.cron,
      timezone: r.timezone ?? undefined,
      spec,
      description: r.description,
      enabled: r.enabled,
      createdAt: new Date(r.createdAt),
      updatedAt: new Date(r.updatedAt),
      nextRunAt: undefined,
      lastRun: undefined,
      ...(error ? { error } : {}),
    };
  }

  private toSchedule(r: ScheduleRow): Schedule {
    const timezone = r.timezone ?? undefined;
    let next: Date | undefined;
    if (r.enabled) {
      try {
        next = nextRunOf(r.cron, timezone);
      } catch {
        // Stored before a time zone vanished from this system: no next slot.
        next = undefined;
      }
    }
    const last = this.db
      .select()
      .from(scheduleRuns)
      .where(eq(scheduleRuns.schedule, r.name))
      .orderBy(desc(scheduleRuns.id))
      .limit(1)
      .get();
    return {
      ...this.definition(r),
      timezone,
      nextRunAt: next,
      lastRun: last ? toRun(last) : undefined,
    };
  }

  private row(name: string): ScheduleRow {
    const r = this.db
      .select()
      .from(schedules)
      .where(eq(schedules.name, checkScheduleName(name)))
      .get();
    if (r === undefined)
      throw new SchedulerError("SLOTH_SCHEDULE_NOT_FOUND", `schedule '${name}' not found`, {
        hint: "list them with `sloth-runner scheduler list`",
        details: { schedule: name },
      });
    return r;
  }

  add(input: ScheduleInput): Schedule {
    const name = checkScheduleName(input.name);
    firingCron(input.cron, input.timezone);
    const spec = checkSpec(input.spec);
    const description = checkDescription(input.description);
    const now = Date.now();
    return this.tx(() => {
      if (this.db.select().from(schedules).where(eq(schedules.name, name)).get())
        throw new SchedulerError("SLOTH_SCHEDULE_EXISTS", `schedule '${name}' already exists`, {
          hint: `change it with \`sloth-runner scheduler update ${name}\`, or delete it first`,
          details: { schedule: name },
        });
      this.db
        .insert(schedules)
        .values({
          name,
          cron: input.cron.trim(),
          timezone: input.timezone ?? null,
          spec: JSON.stringify(spec),
          description,
          enabled: input.enabled ?? true,
          createdAt: now,
          updatedAt: now,
        })
        .run();
      return this.toSchedule(this.row(name));
    });
  }

  update(name: string, changes: ScheduleChanges): Schedule {
    return this.tx(() => {
      const r = this.row(name);
      const cron = changes.cron?.trim() ?? r.cron;
      const timezone =
        changes.timezone === null ? undefined : (changes.timezone ?? r.timezone ?? undefined);
      firingCron(cron, timezone);
      const set: Partial<ScheduleRow> = { cron, timezone: timezone ?? null, updatedAt: Date.now() };
      if (changes.spec !== undefined) set.spec = JSON.stringify(checkSpec(changes.spec));
      if (changes.description !== undefined)
        set.description = checkDescription(changes.description);
      if (changes.enabled !== undefined) set.enabled = changes.enabled;
      this.db.update(schedules).set(set).where(eq(schedules.name, r.name)).run();
      return this.toSchedule(this.row(name));
    });
  }

  get(name: string): Schedule {
    return this.toSchedule(this.row(name));
  }

  find(name: string): Schedule | undefined {
    const r = this.db
      .select()
      .from(schedules)
      .where(eq(schedules.name, checkScheduleName(name)))
      .get();
    return r ? this.toSchedule(r) : undefined;
  }

  list(): Schedule[] {
    return this.db
      .select()
      .from(schedules)
      .orderBy(schedules.name)
      .all()
      .map((r) => this.toSchedule(r));
  }

  definitions(): Schedule[] {
    return this.db
      .select()
      .from(schedules)
      .orderBy(schedules.name)
      .all()
      .map((r) => this.definition(r));
  }

  changeCounter(): number {
    return Number(this.sqlite.pragma("data_version", { simple: true }));
  }

  delete(name: string): void {
    this.tx(() => {
      const r = this.row(name);
      this.db.delete(scheduleRuns).where(eq(scheduleRuns.schedule, r.name)).run();
      this.db.delete(schedules).where(eq(schedules.name, r.name)).run();
    });
  }

  startRun(name: string, trigger: "schedule" | "manual", dueAt?: Date): ScheduleRun {
    const me = processIdentity();
    return this.tx(() => {
      const r = this.row(name);
      const open = this.db
        .select()
        .from(scheduleRuns)
        .where(and(eq(scheduleRuns.schedule, r.name), eq(scheduleRuns.status, "running")))
        .all()
        .filter(runAlive);
      if (open.length > 0) {
        const o = open[0]!;
        throw new SchedulerError(
          "SLOTH_SCHEDULE_BUSY",
          `schedule '${r.name}' is running already (run #${o.id}, ${o.trigger === "manual" ? "started by hand" : "scheduled"}, since ${new Date(o.startedAt).toISOString()})`,
          {
            hint: "wait for it to end: runs of one schedule never overlap",
            details: { schedule: r.name, run: o.id },
          },
        );
      }
      this.prune(r.name);
      const row = this.db
        .insert(scheduleRuns)
        .values({
          schedule: r.name,
          trigger,
          dueAt: dueAt ? dueAt.getTime() : null,
          startedAt: Date.now(),
          status: "running",
          message: "",
          pid: me.pid,
          host: me.host,
          bootId: me.bootId ?? null,
          pidStart: me.pidStart ?? null,
        })
        .returning()
        .get();
      return toRun(row);
    });
  }

  /** Keeps the newest KEEP_RUNS - 1 runs of `name`, making room for one more. */
  private prune(name: string): void {
    this.sqlite
      .prepare(
        `DELETE FROM schedule_runs WHERE schedule = ? AND id <= (
           SELECT id FROM schedule_runs WHERE schedule = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
      )
      .run(name, name, KEEP_RUNS - 1);
  }

  setChild(id: number, pid: number): void {
    const who = processIdentity(pid);
    this.tx(() => {
      this.db
        .update(scheduleRuns)
        .set({ childPid: pid, childStart: who.pidStart ?? null })
        .where(eq(scheduleRuns.id, id))
        .run();
    });
  }

  finishRun(id: number, end: RunEnd): ScheduleRun {
    return this.tx(() => {
      const row = this.db
        .update(scheduleRuns)
        .set({
          status: end.status,
          endedAt: Date.now(),
          exitCode: end.exitCode ?? null,
          runId: end.runId ?? null,
          message: end.message ?? "",
        })
        .where(and(eq(scheduleRuns.id, id), eq(scheduleRuns.status, "running")))
        .returning()
        .get();
      if (row) return toRun(row);
      const now = this.db.select().from(scheduleRuns).where(eq(scheduleRuns.id, id)).get();
      if (!now)
        throw new SchedulerError(
          "SLOTH_SCHEDULE_NOT_FOUND",
          `cannot record the end of run #${id}: its schedule was deleted while it ran`,
        );
      return toRun(now);
    });
  }

  skip(name: string, dueAt: Date, message: string): ScheduleRun {
    return this.tx(() => {
      const r = this.row(name);
      this.prune(r.name);
      const now = Date.now();
      const row = this.db
        .insert(scheduleRuns)
        .values({
          schedule: r.name,
          trigger: "schedule",
          dueAt: dueAt.getTime(),
          startedAt: now,
          endedAt: now,
          status: "skipped",
          message,
        })
        .returning()
        .get();
      return toRun(row);
    });
  }

  runs(name: string, limit = 20): ScheduleRun[] {
    const r = this.row(name);
    return this.db
      .select()
      .from(scheduleRuns)
      .where(eq(scheduleRuns.schedule, r.name))
      .orderBy(desc(scheduleRuns.id))
      .limit(Math.max(1, Math.min(limit, 10_000)))
      .all()
      .map(toRun);
  }

  settleLost(): number {
    return this.tx(() => {
      let n = 0;
      const open = this.db
        .select()
        .from(scheduleRuns)
        .where(eq(scheduleRuns.status, "running"))
        .all();
      for (const r of open) {
        if (r.pid === null || r.host === null || runAlive(r)) continue;
        this.db
          .update(scheduleRuns)
          .set({
            status: "lost",
            endedAt: Date.now(),
            message:
              r.childPid === null
                ? "the process that started it stopped before it ended"
                : "its scheduler stopped before it ended; the run's process has ended since, its result unknown (see `sloth-runner runs list`)",
          })
          .where(eq(scheduleRuns.id, r.id))
          .run();
        n++;
      }
      return n;
    });
  }

  claimScheduler(): () => void {
    const me = processIdentity();
    const token = randomUUID();
    this.tx(() => {
      const held = this.db.select().from(schedulerLock).where(eq(schedulerLock.id, 1)).get();
      if (
        held &&
        !processGone({
          pid: held.pid,
          host: held.host,
          bootId: held.bootId,
          pidStart: held.pidStart,
        })
      )
        throw new SchedulerError(
          "SLOTH_SCHEDULER_RUNNING",
          `cannot start the scheduler: another one runs (pid ${held.pid} on ${held.host}, since ${new Date(held.startedAt).toISOString()})`,
          {
            hint:
              held.host === os.hostname() ? `stop it first (kill ${held.pid})` : "stop it first",
            details: { pid: held.pid, host: held.host },
          },
        );
      this.db.delete(schedulerLock).run();
      this.db
        .insert(schedulerLock)
        .values({
          id: 1,
          token,
          pid: me.pid,
          host: me.host,
          bootId: me.bootId ?? null,
          pidStart: me.pidStart ?? null,
          startedAt: Date.now(),
        })
        .run();
    });
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.tx(() => {
        this.db
          .delete(schedulerLock)
          .where(and(eq(schedulerLock.id, 1), eq(schedulerLock.token, token)))
          .run();
      });
    };
  }

  scheduler(): SchedulerHolder | undefined {
    const held = this.db.select().from(schedulerLock).where(eq(schedulerLock.id, 1)).get();
    if (!held) return undefined;
    if (
      processGone({ pid: held.pid, host: held.host, bootId: held.bootId, pidStart: held.pidStart })
    )
      return undefined;
    return { pid: held.pid, host: held.host, startedAt: new Date(held.startedAt) };
  }
}
