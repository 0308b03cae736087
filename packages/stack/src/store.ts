import { randomUUID } from "node:crypto";
import os from "node:os";
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
import { and, asc, desc, eq } from "drizzle-orm";
import { type BetterSQLite3Database, drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { dependencyOrder, findCycle, transitive } from "./deps.js";
import { StackError } from "./errors.js";
import { depthOf, diffJson } from "./json-diff.js";
import { stackEvents, stackLocks, stackResources, stacks, stackVersions } from "./schema.js";
import type {
  Difference,
  DriftFinding,
  Json,
  JsonObject,
  ResourceSpec,
  SnapshotContent,
  Stack,
  StackEvent,
  StackLock,
  StackResource,
  StackStatus,
  StackVersion,
} from "./types.js";

/** Options of {@link openStackStore}. */
export interface StackStoreOptions {
  /** Path of stacks.db (created and migrated if needed). */
  path: string;
  /** `full` (default) syncs every change; `normal` syncs at WAL checkpoints. */
  durability?: Durability | undefined;
  /**
   * How long a change waits for other processes' changes to the same file
   * (default 30 s: many runs and Lua workers may write at once).
   */
  busyTimeoutMs?: number | undefined;
}

/** Who does something, for the audit trail (default `user@host`), and the lock they hold. */
export interface Source {
  source?: string | undefined;
  /**
   * The id of the stack's lock, when the caller holds it. While someone else
   * holds the lock, changes to the stack (its state, resources, dependencies,
   * snapshots, executions) are refused with SLOTH_STACK_LOCKED.
   */
  lockId?: string | undefined;
}

/** Options of {@link StackStore.lock}. */
export interface LockOptions extends Source {
  /** Who holds it (default `user@host`). */
  lockedBy?: string | undefined;
  /** What it is held for (default "manual"). */
  operation?: string | undefined;
  reason?: string | undefined;
  metadata?: JsonObject | undefined;
  /** The lock expires after this long; default: held until released. */
  ttlMs?: number | undefined;
  /**
   * The holding process (default: this one): a lock whose process is gone
   * from this host is broken by the next `lock`. Pass `null` for a lock
   * that outlives its process (the CLI's `stack lock acquire`).
   */
  pid?: number | null | undefined;
  /** The id to give the lock (default: a random one); the holder passes it as `lockId`. */
  lockId?: string | undefined;
}

/** Everything about one stack, as `stack export` writes it. */
export interface StackExport {
  format: "sloth-stack/1";
  exportedAt: string;
  stack: Stack;
  versions: StackVersion[];
  resources: StackResource[];
  events: StackEvent[];
}

/** The stacks database. Every method is synchronous; several processes may share the file. */
export interface StackStore {
  /** Creates a stack; SLOTH_STACK_EXISTS when the name is taken. */
  create(name: string, options?: { description?: string; dependsOn?: string[] } & Source): Stack;
  /** The stack, created first when there is none. */
  ensure(name: string, options?: Source): Stack;
  /** The stack; SLOTH_STACK_NOT_FOUND when there is none. */
  get(name: string): Stack;
  /** The stack, or undefined. */
  find(name: string): Stack | undefined;
  /** Every stack, by name. */
  list(): Stack[];
  /** Changes a stack's description or dependencies (a cycle is refused). */
  update(name: string, changes: { description?: string; dependsOn?: string[] } & Source): Stack;
  /**
   * Deletes a stack with its snapshots and resources (its events stay).
   * Refused while it is locked or other stacks depend on it, unless `force`.
   */
  delete(name: string, options?: { force?: boolean } & Source): void;
  /** The stack with its snapshots, resources and events. */
  export(name: string): StackExport;

  /** Marks an execution as started (status `running`). */
  beginExecution(name: string, options: { runId: string } & Source): Stack;
  /** Records how an execution ended; `state`, when given, becomes the current state. */
  endExecution(
    name: string,
    options: {
      runId: string;
      status: "completed" | "failed";
      state?: JsonObject;
      message?: string;
    } & Source,
  ): Stack;
  /** Replaces the current state. */
  setState(name: string, state: JsonObject, options?: Source): Stack;

  /** Takes the stack's lock; SLOTH_STACK_LOCKED naming the holder when it is held. */
  lock(name: string, options?: LockOptions): StackLock;
  /** The lock, when there is one (possibly stale). */
  lockStatus(name: string): StackLock | undefined;
  /**
   * Releases the lock held under `lockId` (or by `lockedBy`); false when it
   * was not locked; SLOTH_STACK_LOCKED when someone else holds it.
   */
  unlock(name: string, holder: { lockId?: string; lockedBy?: string } & Source): boolean;
  /** Releases the lock whoever holds it; returns what was released. */
  forceUnlock(name: string, options?: { reason?: string } & Source): StackLock | undefined;

  /** Takes a snapshot of the current state and resources: the next version. */
  snapshot(
    name: string,
    options?: { creator?: string; description?: string } & Source,
  ): StackVersion;
  /** Snapshots, oldest first. */
  versions(name: string): StackVersion[];
  /** One snapshot, by number or `vN`. */
  version(name: string, version: number | string): StackVersion;
  /**
   * Makes a snapshot's state, dependencies and resources the current ones.
   * Refused while someone else holds the lock.
   */
  restore(name: string, version: number | string, options?: { lockId?: string } & Source): Stack;
  /** What changed from snapshot `from` to snapshot `to` (`current` names the current state). */
  compare(name: string, from: number | string, to: number | string): Difference[];
  /** Deletes a snapshot. */
  deleteVersion(name: string, version: number | string, options?: Source): void;

  /** Adds or replaces a resource. */
  setResource(name: string, resource: ResourceSpec, options?: Source): StackResource;
  /** The stack's resources, by name. */
  resources(name: string): StackResource[];
  /** Removes a resource; SLOTH_STACK_RESOURCE_NOT_FOUND when there is none. */
  removeResource(name: string, resource: string, options?: Source): void;
  /** Records what drift detection found (used by {@link detectDrift}). */
  recordDrift(
    name: string,
    findings: { name: string; actual?: Json | undefined; finding: DriftFinding }[],
    options?: { event?: string } & Source,
  ): void;

  /** Direct and transitive dependencies, dependents, and the missing ones. */
  dependencies(name: string): {
    direct: string[];
    transitive: string[];
    dependents: string[];
    missing: string[];
    cycle: string[] | undefined;
  };
  /** `names` in deployment order (dependencies first); SLOTH_STACK_DEPENDENCY_CYCLE on a cycle. */
  order(names: string[]): string[];

  /** The audit trail, newest first (of one stack when `stack` is given). */
  events(options?: { stack?: string; limit?: number }): StackEvent[];
  /** Appends an event to the audit trail. */
  addEvent(
    stack: string,
    event: {
      type: string;
      severity?: StackEvent["severity"];
      message: string;
      data?: JsonObject;
    } & Source,
  ): void;
  close(): void;
}

const MIGRATIONS = fileURLToPath(new URL("../drizzle", import.meta.url));
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** The longest lock ttl: 10 years. */
export const MAX_TTL_MS = 10 * 365.25 * 24 * 3600 * 1000;
/** How deep states and desired values may nest. */
export const MAX_DEPTH = 256;

/** `user@host`, the default source of changes and holder of locks. */
export function defaultActor(): string {
  let user = process.env.USER ?? process.env.LOGNAME;
  if (!user) {
    try {
      user = os.userInfo().username;
    } catch {
      user = `uid${process.getuid?.() ?? "?"}`;
    }
  }
  return `${user}@${os.hostname()}`;
}

/** Throws SLOTH_INVALID_ARGUMENT unless `name` can name a stack. */
export function checkStackName(name: unknown): string {
  if (typeof name === "string" && NAME.test(name)) return name;
  throw new StackError("SLOTH_INVALID_ARGUMENT", `invalid stack name ${JSON.stringify(name)}`, {
    hint: "use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
  });
}

function checkResourceName(name: unknown): string {
  const control = typeof name === "string" && [...name].some((c) => c.charCodeAt(0) < 32);
  if (typeof name === "string" && name.length > 0 && name.length <= 200 && !control) return name;
  throw new StackError("SLOTH_INVALID_ARGUMENT", `invalid resource name ${JSON.stringify(name)}`, {
    hint: "use 1-200 characters without control characters",
  });
}

function versionNumber(v: number | string): number {
  const n = typeof v === "number" ? v : /^v?(\d+)$/i.exec(String(v).trim())?.[1];
  const num = Number(n);
  if (n === undefined || !Number.isInteger(num) || num < 1)
    throw new StackError("SLOTH_INVALID_ARGUMENT", `invalid version ${JSON.stringify(v)}`, {
      hint: "name a snapshot as v1, v2, ... or by its number",
    });
  return num;
}

function checkJsonObject(value: unknown, what: string): JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new StackError("SLOTH_INVALID_ARGUMENT", `${what} must be a JSON object`);
  checkDepth(value, what);
  try {
    return JSON.parse(JSON.stringify(value)) as JsonObject;
  } catch (e) {
    throw new StackError("SLOTH_INVALID_ARGUMENT", `${what} is not JSON: ${(e as Error).message}`);
  }
}

function checkDepth(value: unknown, what: string): void {
  if (depthOf(value, MAX_DEPTH) > MAX_DEPTH)
    throw new StackError("SLOTH_INVALID_ARGUMENT", `${what} nests deeper than ${MAX_DEPTH} levels`);
}

const date = (ms: number | null) => (ms === null ? undefined : new Date(ms));
const parse = <T>(text: string | null, fallback: T): T =>
  text === null ? fallback : (JSON.parse(text) as T);

type StackRow = typeof stacks.$inferSelect;
type LockRow = typeof stackLocks.$inferSelect;
type ResourceRow = typeof stackResources.$inferSelect;
type VersionRow = typeof stackVersions.$inferSelect;

/** Opens stacks.db, migrating it to the current schema. */
export function openStackStore(options: StackStoreOptions): StackStore {
  const { sqlite, value: db } = openSqliteWith(
    options.path,
    {
      durability: options.durability ?? "full",
      busyTimeoutMs: options.busyTimeoutMs ?? 30_000,
    },
    (opened) => {
      const orm = drizzle(opened);
      migrateWithRetry(() => migrate(orm, { migrationsFolder: MIGRATIONS }));
      return orm;
    },
    "the stacks database",
    "move it aside (a new, empty one is created; the moved file keeps the old stacks)",
  );
  return new SqliteStackStore(sqlite, db);
}

class SqliteStackStore implements StackStore {
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

  private row(name: string): StackRow {
    const row = this.db
      .select()
      .from(stacks)
      .where(eq(stacks.name, checkStackName(name)))
      .get();
    if (row === undefined)
      throw new StackError("SLOTH_STACK_NOT_FOUND", `stack '${name}' not found`, {
        hint: `create it with \`sloth-runner stack create ${name}\`, or run a workflow as it with \`sloth-runner run ${name} -f FILE\``,
        details: { stack: name },
      });
    return row;
  }

  private lockRow(id: number): LockRow | undefined {
    return this.db.select().from(stackLocks).where(eq(stackLocks.stackId, id)).get();
  }

  private toLock(l: LockRow): StackLock {
    const stale =
      l.expiresAt !== null && l.expiresAt <= Date.now()
        ? "expired"
        : l.pid > 0 &&
            processGone({ pid: l.pid, host: l.host, bootId: l.bootId, pidStart: l.pidStart })
          ? "holder gone"
          : undefined;
    return {
      lockId: l.lockId,
      lockedBy: l.lockedBy,
      operation: l.operation,
      reason: l.reason,
      metadata: parse(l.metadata, {}),
      lockedAt: new Date(l.lockedAt),
      expiresAt: date(l.expiresAt),
      host: l.host,
      pid: l.pid,
      ...(stale ? { stale } : {}),
    };
  }

  private toStack(r: StackRow): Stack {
    const lock = this.lockRow(r.id);
    return {
      name: r.name,
      description: r.description,
      status: r.status as StackStatus,
      state: parse(r.state, {}),
      dependsOn: parse(r.dependsOn, []),
      lastVersion: r.lastVersion,
      createdAt: new Date(r.createdAt),
      updatedAt: new Date(r.updatedAt),
      lastExecutionAt: date(r.lastExecutionAt),
      executionCount: r.executionCount,
      lastRunId: r.lastRunId ?? undefined,
      lock: lock ? this.toLock(lock) : undefined,
    };
  }

  private toResource(r: ResourceRow): StackResource {
    return {
      name: r.name,
      type: r.type,
      desired: parse<Json>(r.desired, null),
      ...(r.check !== null ? { check: r.check } : {}),
      ...(r.fix !== null ? { fix: r.fix } : {}),
      dependsOn: parse(r.dependsOn, []),
      actual: r.actual === null ? undefined : parse<Json>(r.actual, null),
      drift:
        r.drift === null
          ? undefined
          : parse<DriftFinding>(r.drift, { status: "unchecked", differences: [] }),
      checkedAt: date(r.checkedAt),
    };
  }

  private toVersion(r: VersionRow): StackVersion {
    return {
      version: r.version,
      name: `v${r.version}`,
      creator: r.creator,
      description: r.description,
      createdAt: new Date(r.createdAt),
      content: parse<SnapshotContent>(r.content, { state: {}, dependsOn: [], resources: [] }),
    };
  }

  private event(
    stack: string,
    type: string,
    message: string,
    source: string | undefined,
    data: JsonObject = {},
    severity: StackEvent["severity"] = "info",
  ): void {
    this.db
      .insert(stackEvents)
      .values({
        stack,
        type,
        severity,
        message,
        source: source ?? defaultActor(),
        data: JSON.stringify(data),
        createdAt: Date.now(),
      })
      .run();
  }

  addEvent(
    stack: string,
    e: {
      type: string;
      severity?: StackEvent["severity"];
      message: string;
      data?: JsonObject;
    } & Source,
  ): void {
    checkStackName(stack);
    this.tx(() => this.event(stack, e.type, e.message, e.source, e.data ?? {}, e.severity));
  }

  private touch(id: number, changes: Partial<typeof stacks.$inferInsert>): void {
    this.db
      .update(stacks)
      .set({ ...changes, updatedAt: Date.now() })
      .where(eq(stacks.id, id))
      .run();
  }

  /** The dependency graph of every stack (name → depends on). */
  private graph(): Map<string, string[]> {
    const g = new Map<string, string[]>();
    for (const r of this.db
      .select({ name: stacks.name, deps: stacks.dependsOn })
      .from(stacks)
      .all())
      g.set(r.name, parse(r.deps, []));
    return g;
  }

  private checkDeps(name: string, deps: unknown): string[] {
    if (!Array.isArray(deps))
      throw new StackError("SLOTH_INVALID_ARGUMENT", "dependencies must be a list of stack names");
    const list = [...new Set(deps.map((d) => checkStackName(d)))];
    if (list.includes(name))
      throw new StackError(
        "SLOTH_STACK_DEPENDENCY_CYCLE",
        `stack '${name}' cannot depend on itself`,
      );
    const g = this.graph();
    g.set(name, list);
    const cycle = findCycle(g, [name]);
    if (cycle)
      throw new StackError(
        "SLOTH_STACK_DEPENDENCY_CYCLE",
        `these dependencies would make a cycle: ${cycle.join(" -> ")}`,
        { details: { cycle }, hint: "remove one of the dependencies in the cycle" },
      );
    return list;
  }

  create(
    name: string,
    options: { description?: string; dependsOn?: string[] } & Source = {},
  ): Stack {
    checkStackName(name);
    return this.tx(() => {
      if (this.find(name))
        throw new StackError("SLOTH_STACK_EXISTS", `stack '${name}' already exists`, {
          hint: `see it with \`sloth-runner stack show ${name}\``,
          details: { stack: name },
        });
      const deps = this.checkDeps(name, options.dependsOn ?? []);
      const now = Date.now();
      this.db
        .insert(stacks)
        .values({
          name,
          description: options.description ?? "",
          status: "created",
          state: "{}",
          dependsOn: JSON.stringify(deps),
          lastVersion: 0,
          createdAt: now,
          updatedAt: now,
          executionCount: 0,
        })
        .run();
      this.event(name, "stack.created", `stack '${name}' created`, options.source, {
        dependsOn: deps,
      });
      return this.get(name);
    });
  }

  ensure(name: string, options: Source = {}): Stack {
    return this.find(name) ?? this.tx(() => this.find(name) ?? this.create(name, options));
  }

  get(name: string): Stack {
    return this.toStack(this.settle(this.row(name)));
  }

  /**
   * A stack left `running` by a run whose lock went stale (its process is
   * gone, or the lock expired) is recorded as failed, with an event, and the
   * stale lock dropped: nothing else will ever end that run.
   */
  private settle(row: StackRow): StackRow {
    if (row.status !== "running") return row;
    const held = this.lockRow(row.id);
    if (!held || held.operation !== "run" || !this.toLock(held).stale) return row;
    return this.tx(() => {
      const now = this.db.select().from(stacks).where(eq(stacks.id, row.id)).get();
      if (now === undefined || now.status !== "running") return now ?? row;
      const lock = this.lockRow(row.id);
      if (!lock || !this.toLock(lock).stale) return now;
      this.endDead(now, this.toLock(lock));
      return this.db.select().from(stacks).where(eq(stacks.id, row.id)).get() as StackRow;
    });
  }

  /** Records the run of a dead process as failed (inside a transaction). */
  private endDead(row: StackRow, lock: StackLock): void {
    this.db.delete(stackLocks).where(eq(stackLocks.stackId, row.id)).run();
    this.event(
      row.name,
      "lock.force_released",
      `stale lock of ${lock.lockedBy} broken (${lock.stale ?? "stale"})`,
      "sloth-runner",
      { lockedBy: lock.lockedBy, operation: lock.operation, why: lock.stale ?? "stale" },
      "warning",
    );
    this.touch(row.id, {
      status: "failed",
      lastExecutionAt: Date.now(),
      executionCount: row.executionCount + 1,
    });
    this.event(
      row.name,
      "stack.execution.failed",
      `run ${row.lastRunId ?? "?"} ended without recording how: its lock is stale (${lock.stale ?? "broken"}, ${lock.lockedBy})`,
      "sloth-runner",
      { runId: row.lastRunId ?? null },
      "error",
    );
  }

  find(name: string): Stack | undefined {
    const row = this.db
      .select()
      .from(stacks)
      .where(eq(stacks.name, checkStackName(name)))
      .get();
    return row ? this.toStack(this.settle(row)) : undefined;
  }

  list(): Stack[] {
    return this.db
      .select()
      .from(stacks)
      .orderBy(asc(stacks.name))
      .all()
      .map((r) => this.toStack(this.settle(r)));
  }

  update(name: string, changes: { description?: string; dependsOn?: string[] } & Source): Stack {
    return this.tx(() => {
      const row = this.row(name);
      this.checkLockFree(name, row.id, changes.lockId);
      const set: Partial<typeof stacks.$inferInsert> = {};
      const data: JsonObject = {};
      if (changes.description !== undefined) {
        set.description = String(changes.description);
        data.description = set.description;
      }
      if (changes.dependsOn !== undefined) {
        const deps = this.checkDeps(name, changes.dependsOn);
        set.dependsOn = JSON.stringify(deps);
        data.dependsOn = deps;
      }
      this.touch(row.id, set);
      this.event(name, "stack.updated", `stack '${name}' updated`, changes.source, data);
      return this.get(name);
    });
  }

  delete(name: string, options: { force?: boolean } & Source = {}): void {
    this.tx(() => {
      const row = this.row(name);
      const lock = this.lockRow(row.id);
      if (lock && !options.force && lock.lockId !== options.lockId) {
        const l = this.toLock(lock);
        if (!l.stale)
          throw new StackError(
            "SLOTH_STACK_LOCKED",
            `stack '${name}' is locked by ${l.lockedBy} (${l.operation})`,
            {
              hint: "wait for it to be released, or delete with --force",
              details: { stack: name, lockedBy: l.lockedBy },
            },
          );
      }
      const dependents = this.dependents(name);
      if (dependents.length > 0 && !options.force)
        throw new StackError(
          "SLOTH_STACK_IN_USE",
          `stack '${name}' is a dependency of ${dependents.map((d) => `'${d}'`).join(", ")}`,
          {
            hint: "remove it from their dependencies first, or delete with --force",
            details: { stack: name, dependents },
          },
        );
      this.db.delete(stacks).where(eq(stacks.id, row.id)).run();
      this.event(name, "stack.destroyed", `stack '${name}' deleted`, options.source, {
        executions: row.executionCount,
        snapshots: row.lastVersion,
      });
    });
  }

  export(name: string): StackExport {
    const stack = this.get(name);
    return {
      format: "sloth-stack/1",
      exportedAt: new Date().toISOString(),
      stack,
      versions: this.versions(name),
      resources: this.resources(name),
      // Events of an earlier stack of the same name stay out.
      events: this.events({ stack: name, limit: 100_000 }).filter(
        (e) => e.createdAt >= stack.createdAt,
      ),
    };
  }

  beginExecution(name: string, options: { runId: string } & Source): Stack {
    return this.tx(() => {
      const row = this.row(name);
      this.checkLockFree(name, row.id, options.lockId);
      this.touch(row.id, { status: "running", lastRunId: options.runId });
      this.event(name, "stack.execution.started", `run ${options.runId} started`, options.source, {
        runId: options.runId,
      });
      return this.get(name);
    });
  }

  endExecution(
    name: string,
    options: {
      runId: string;
      status: "completed" | "failed";
      state?: JsonObject;
      message?: string;
    } & Source,
  ): Stack {
    const state = options.state === undefined ? undefined : checkJsonObject(options.state, "state");
    return this.tx(() => {
      const row = this.row(name);
      this.checkLockFree(name, row.id, options.lockId);
      this.touch(row.id, {
        status: options.status,
        lastRunId: options.runId,
        lastExecutionAt: Date.now(),
        executionCount: row.executionCount + 1,
        ...(state ? { state: JSON.stringify(state) } : {}),
      });
      this.event(
        name,
        `stack.execution.${options.status}`,
        `run ${options.runId} ${options.status}${options.message ? `: ${options.message}` : ""}`,
        options.source,
        { runId: options.runId },
        options.status === "failed" ? "error" : "info",
      );
      return this.get(name);
    });
  }

  setState(name: string, state: JsonObject, options: Source = {}): Stack {
    const value = checkJsonObject(state, "state");
    return this.tx(() => {
      const row = this.row(name);
      this.checkLockFree(name, row.id, options.lockId);
      this.touch(row.id, { state: JSON.stringify(value) });
      this.event(name, "stack.updated", "state replaced", options.source);
      return this.get(name);
    });
  }

  lock(name: string, options: LockOptions = {}): StackLock {
    const ttl = options.ttlMs;
    if (ttl !== undefined && (!Number.isFinite(ttl) || ttl <= 0 || ttl > MAX_TTL_MS))
      throw new StackError(
        "SLOTH_INVALID_ARGUMENT",
        `invalid lock ttl ${ttl}: expected a positive duration of at most 10 years`,
        { hint: "leave the ttl out for a lock held until it is released" },
      );
    const metadata = checkJsonObject(options.metadata ?? {}, "lock metadata");
    return this.tx(() => {
      const row = this.row(name);
      const held = this.lockRow(row.id);
      if (held) {
        const l = this.toLock(held);
        if (!l.stale) throw lockedError(name, l);
        if (row.status === "running" && held.operation === "run") this.endDead(row, l);
        else {
          this.db.delete(stackLocks).where(eq(stackLocks.stackId, row.id)).run();
          this.event(
            name,
            "lock.force_released",
            `stale lock of ${l.lockedBy} broken (${l.stale})`,
            options.source,
            { lockedBy: l.lockedBy, operation: l.operation, why: l.stale },
            "warning",
          );
        }
      }
      const who = processIdentity(
        options.pid === null ? process.pid : (options.pid ?? process.pid),
      );
      const now = Date.now();
      const lockId = options.lockId ?? randomUUID();
      const lockedBy = options.lockedBy ?? defaultActor();
      this.db
        .insert(stackLocks)
        .values({
          stackId: row.id,
          lockId,
          lockedBy,
          operation: options.operation ?? "manual",
          reason: options.reason ?? "",
          metadata: JSON.stringify(metadata),
          lockedAt: now,
          expiresAt: ttl === undefined ? null : now + ttl,
          host: who.host,
          // 0: not tied to a process.
          pid: options.pid === null ? 0 : who.pid,
          bootId: who.bootId ?? null,
          pidStart: who.pidStart ?? null,
        })
        .run();
      this.event(
        name,
        "lock.acquired",
        `locked by ${lockedBy}${options.reason ? `: ${options.reason}` : ""}`,
        options.source ?? lockedBy,
        {
          lockedBy,
          operation: options.operation ?? "manual",
          reason: options.reason ?? "",
        },
      );
      return this.toLock(this.lockRow(row.id) as LockRow);
    });
  }

  lockStatus(name: string): StackLock | undefined {
    const l = this.lockRow(this.row(name).id);
    return l ? this.toLock(l) : undefined;
  }

  unlock(name: string, holder: { lockId?: string; lockedBy?: string } & Source): boolean {
    if (holder.lockId === undefined && holder.lockedBy === undefined)
      throw new StackError(
        "SLOTH_INVALID_ARGUMENT",
        "unlock needs the lock id or the holder's name",
      );
    return this.tx(() => {
      const row = this.row(name);
      const held = this.lockRow(row.id);
      if (!held) return false;
      const mine =
        holder.lockId !== undefined
          ? held.lockId === holder.lockId
          : held.lockedBy === holder.lockedBy;
      if (!mine) {
        const l = this.toLock(held);
        throw new StackError(
          "SLOTH_STACK_LOCKED",
          `stack '${name}' is locked by ${l.lockedBy}, not by ${holder.lockedBy ?? "this holder"}`,
          {
            hint: `release it as its holder (--locked-by '${l.lockedBy}'), or \`sloth-runner stack lock force-release ${name}\``,
            details: { stack: name, lockedBy: l.lockedBy },
          },
        );
      }
      this.db.delete(stackLocks).where(eq(stackLocks.stackId, row.id)).run();
      this.event(
        name,
        "lock.released",
        `released by ${held.lockedBy}`,
        holder.source ?? held.lockedBy,
        {
          lockedBy: held.lockedBy,
          heldMs: Date.now() - held.lockedAt,
        },
      );
      return true;
    });
  }

  forceUnlock(name: string, options: { reason?: string } & Source = {}): StackLock | undefined {
    return this.tx(() => {
      const row = this.row(name);
      const held = this.lockRow(row.id);
      if (!held) return undefined;
      const l = this.toLock(held);
      this.db.delete(stackLocks).where(eq(stackLocks.stackId, row.id)).run();
      this.event(
        name,
        "lock.force_released",
        `lock of ${l.lockedBy} force-released${options.reason ? `: ${options.reason}` : ""}`,
        options.source,
        { lockedBy: l.lockedBy, operation: l.operation },
        "warning",
      );
      return l;
    });
  }

  /** Throws when the lock is held by someone other than `lockId`. */
  private checkLockFree(name: string, id: number, lockId: string | undefined): void {
    const held = this.lockRow(id);
    if (!held || held.lockId === lockId) return;
    const l = this.toLock(held);
    if (!l.stale) throw lockedError(name, l);
  }

  private content(row: StackRow): SnapshotContent {
    return {
      state: parse(row.state, {}),
      dependsOn: parse(row.dependsOn, []),
      resources: this.resources(row.name).map(specOf),
    };
  }

  snapshot(
    name: string,
    options: { creator?: string; description?: string } & Source = {},
  ): StackVersion {
    return this.tx(() => {
      const row = this.row(name);
      this.checkLockFree(name, row.id, options.lockId);
      const version = row.lastVersion + 1;
      const creator = options.creator ?? defaultActor();
      this.db
        .insert(stackVersions)
        .values({
          stackId: row.id,
          version,
          creator,
          description: options.description ?? "",
          content: JSON.stringify(this.content(row)),
          createdAt: Date.now(),
        })
        .run();
      this.touch(row.id, { lastVersion: version });
      this.event(
        name,
        "snapshot.created",
        `snapshot v${version} created`,
        options.source ?? creator,
        {
          version,
        },
      );
      return this.version(name, version);
    });
  }

  versions(name: string): StackVersion[] {
    const row = this.row(name);
    return this.db
      .select()
      .from(stackVersions)
      .where(eq(stackVersions.stackId, row.id))
      .orderBy(asc(stackVersions.version))
      .all()
      .map((r) => this.toVersion(r));
  }

  version(name: string, version: number | string): StackVersion {
    const row = this.row(name);
    const n = versionNumber(version);
    const v = this.db
      .select()
      .from(stackVersions)
      .where(and(eq(stackVersions.stackId, row.id), eq(stackVersions.version, n)))
      .get();
    if (v === undefined)
      throw new StackError(
        "SLOTH_STACK_VERSION_NOT_FOUND",
        `stack '${name}' has no snapshot v${n}`,
        {
          hint: `list them with \`sloth-runner stack snapshot list ${name}\``,
          details: { stack: name, version: n },
        },
      );
    return this.toVersion(v);
  }

  restore(
    name: string,
    version: number | string,
    options: { lockId?: string } & Source = {},
  ): Stack {
    return this.tx(() => {
      const row = this.row(name);
      this.checkLockFree(name, row.id, options.lockId);
      const v = this.version(name, version);
      const c = v.content;
      // Other stacks may have come to depend on this one since the snapshot.
      if (JSON.stringify(c.dependsOn) !== row.dependsOn) {
        try {
          this.checkDeps(name, c.dependsOn);
        } catch (e) {
          throw new StackError(
            "SLOTH_STACK_DEPENDENCY_CYCLE",
            `cannot restore ${v.name} of stack '${name}': ${(e as Error).message}`,
            {
              hint: "change the dependencies of the other stacks in the cycle first (`sloth-runner stack deps set`)",
              details: (e as StackError).details,
            },
          );
        }
      }
      this.db.delete(stackResources).where(eq(stackResources.stackId, row.id)).run();
      for (const r of c.resources) this.insertResource(row.id, r);
      // Dependencies that no longer exist are kept: `deps show` reports them missing.
      this.touch(row.id, {
        state: JSON.stringify(c.state),
        dependsOn: JSON.stringify(c.dependsOn),
      });
      this.event(name, "snapshot.restored", `snapshot ${v.name} restored`, options.source, {
        version: v.version,
      });
      return this.get(name);
    });
  }

  compare(name: string, from: number | string, to: number | string): Difference[] {
    const side = (v: number | string) =>
      String(v).trim().toLowerCase() === "current"
        ? this.content(this.row(name))
        : this.version(name, v).content;
    const a = side(from);
    const b = side(to);
    const byName = (c: SnapshotContent) =>
      Object.fromEntries(c.resources.map((r) => [r.name, r as unknown as Json]));
    return diffJson(
      { state: a.state, dependsOn: a.dependsOn, resources: byName(a) },
      { state: b.state, dependsOn: b.dependsOn, resources: byName(b) },
    );
  }

  deleteVersion(name: string, version: number | string, options: Source = {}): void {
    this.tx(() => {
      const row = this.row(name);
      this.checkLockFree(name, row.id, options.lockId);
      const v = this.version(name, version);
      this.db
        .delete(stackVersions)
        .where(and(eq(stackVersions.stackId, row.id), eq(stackVersions.version, v.version)))
        .run();
      this.event(name, "snapshot.deleted", `snapshot ${v.name} deleted`, options.source, {
        version: v.version,
      });
    });
  }

  private insertResource(stackId: number, r: ResourceSpec): void {
    this.db
      .insert(stackResources)
      .values({
        stackId,
        name: r.name,
        type: r.type,
        desired: JSON.stringify(r.desired ?? null),
        check: r.check ?? null,
        fix: r.fix ?? null,
        dependsOn: JSON.stringify(r.dependsOn ?? []),
      })
      .run();
  }

  setResource(name: string, resource: ResourceSpec, options: Source = {}): StackResource {
    const r = checkResource(resource);
    return this.tx(() => {
      const row = this.row(name);
      this.checkLockFree(name, row.id, options.lockId);
      const others = new Map(this.resources(name).map((x) => [x.name, x.dependsOn]));
      others.set(r.name, r.dependsOn ?? []);
      const cycle = findCycle(others, [r.name]);
      if (cycle)
        throw new StackError(
          "SLOTH_STACK_DEPENDENCY_CYCLE",
          `resource dependencies would make a cycle: ${cycle.join(" -> ")}`,
          { details: { cycle } },
        );
      const existed = others.size === this.resources(name).length;
      this.db
        .delete(stackResources)
        .where(and(eq(stackResources.stackId, row.id), eq(stackResources.name, r.name)))
        .run();
      this.insertResource(row.id, r);
      this.touch(row.id, {});
      this.event(
        name,
        "stack.updated",
        `resource '${r.name}' ${existed ? "replaced" : "added"}`,
        options.source,
        { resource: r.name },
      );
      return this.resources(name).find((x) => x.name === r.name) as StackResource;
    });
  }

  resources(name: string): StackResource[] {
    const row = this.row(name);
    return this.db
      .select()
      .from(stackResources)
      .where(eq(stackResources.stackId, row.id))
      .orderBy(asc(stackResources.name))
      .all()
      .map((r) => this.toResource(r));
  }

  removeResource(name: string, resource: string, options: Source = {}): void {
    this.tx(() => {
      const row = this.row(name);
      this.checkLockFree(name, row.id, options.lockId);
      const gone = this.db
        .delete(stackResources)
        .where(and(eq(stackResources.stackId, row.id), eq(stackResources.name, resource)))
        .run();
      if (gone.changes === 0)
        throw new StackError(
          "SLOTH_STACK_RESOURCE_NOT_FOUND",
          `stack '${name}' has no resource '${resource}'`,
          { hint: `list them with \`sloth-runner stack resource list ${name}\`` },
        );
      this.touch(row.id, {});
      this.event(name, "stack.updated", `resource '${resource}' removed`, options.source, {
        resource,
      });
    });
  }

  recordDrift(
    name: string,
    findings: { name: string; actual?: Json | undefined; finding: DriftFinding }[],
    options: { event?: string } & Source = {},
  ): void {
    this.tx(() => {
      const row = this.row(name);
      const now = Date.now();
      for (const f of findings) {
        this.db
          .update(stackResources)
          .set({
            actual: f.actual === undefined ? null : JSON.stringify(f.actual),
            drift: JSON.stringify(f.finding),
            checkedAt: now,
          })
          .where(and(eq(stackResources.stackId, row.id), eq(stackResources.name, f.name)))
          .run();
      }
      const off = findings.filter(
        (f) => f.finding.status !== "in_sync" && f.finding.status !== "unchecked",
      );
      const type = options.event ?? (off.length > 0 ? "drift.detected" : "drift.checked");
      const message =
        off.length > 0
          ? `${off.length} of ${findings.length} resource(s) not in sync: ${off.map((f) => `${f.name} (${f.finding.status})`).join(", ")}`
          : `${findings.length} resource(s) checked, none drifted`;
      this.event(
        name,
        type,
        message,
        options.source,
        { resources: off.map((f) => f.name) },
        off.length > 0 ? "warning" : "info",
      );
    });
  }

  private dependents(name: string): string[] {
    const out: string[] = [];
    for (const [n, deps] of this.graph()) if (deps.includes(name)) out.push(n);
    return out.sort();
  }

  dependencies(name: string) {
    const stack = this.get(name);
    const g = this.graph();
    const all = transitive(g, name);
    return {
      direct: stack.dependsOn,
      transitive: all,
      dependents: this.dependents(name),
      missing: all.filter((d) => !g.has(d)),
      cycle: findCycle(g, [name]),
    };
  }

  order(names: string[]): string[] {
    const g = this.graph();
    for (const n of names) if (!g.has(checkStackName(n))) this.row(n);
    const r = dependencyOrder(g, names);
    if ("cycle" in r)
      throw new StackError(
        "SLOTH_STACK_DEPENDENCY_CYCLE",
        `the stacks' dependencies make a cycle: ${r.cycle.join(" -> ")}`,
        { details: { cycle: r.cycle }, hint: "remove one of the dependencies in the cycle" },
      );
    return r.order;
  }

  events(options: { stack?: string; limit?: number } = {}): StackEvent[] {
    const limit = options.limit ?? 100;
    const q = this.db.select().from(stackEvents);
    const rows = (
      options.stack === undefined
        ? q
        : q.where(eq(stackEvents.stack, checkStackName(options.stack)))
    )
      .orderBy(desc(stackEvents.id))
      .limit(limit)
      .all();
    return rows.map((e) => ({
      id: e.id,
      stack: e.stack,
      type: e.type,
      severity: e.severity as StackEvent["severity"],
      message: e.message,
      source: e.source,
      data: parse(e.data, {}),
      createdAt: new Date(e.createdAt),
    }));
  }
}

function lockedError(name: string, l: StackLock): StackError {
  const since = l.lockedAt.toISOString();
  return new StackError(
    "SLOTH_STACK_LOCKED",
    `stack '${name}' is locked by ${l.lockedBy} since ${since} (${l.operation}${l.reason ? `: ${l.reason}` : ""})`,
    {
      hint: `its holder passes the lock id (--lock-id ID); others wait for it to be released, or \`sloth-runner stack lock force-release ${name}\` if its holder is gone`,
      details: { stack: name, lockedBy: l.lockedBy, operation: l.operation, lockedAt: since },
    },
  );
}

function specOf(r: StackResource): ResourceSpec {
  return {
    name: r.name,
    type: r.type,
    desired: r.desired,
    ...(r.check !== undefined ? { check: r.check } : {}),
    ...(r.fix !== undefined ? { fix: r.fix } : {}),
    dependsOn: r.dependsOn,
  };
}

function checkResource(r: ResourceSpec): ResourceSpec {
  if (typeof r !== "object" || r === null)
    throw new StackError("SLOTH_INVALID_ARGUMENT", "a resource must be an object");
  const name = checkResourceName(r.name);
  if (typeof r.type !== "string" || r.type === "")
    throw new StackError("SLOTH_INVALID_ARGUMENT", `resource '${name}' needs a type`);
  for (const k of ["check", "fix"] as const)
    if (r[k] !== undefined && (typeof r[k] !== "string" || r[k].trim() === ""))
      throw new StackError(
        "SLOTH_INVALID_ARGUMENT",
        `resource '${name}': ${k} must be a shell command`,
      );
  const deps = r.dependsOn ?? [];
  if (!Array.isArray(deps))
    throw new StackError(
      "SLOTH_INVALID_ARGUMENT",
      `resource '${name}': depends_on must be a list of names`,
    );
  let desired: Json;
  checkDepth(r.desired, `resource '${name}': desired`);
  try {
    desired = JSON.parse(JSON.stringify(r.desired ?? null)) as Json;
  } catch (e) {
    throw new StackError(
      "SLOTH_INVALID_ARGUMENT",
      `resource '${name}': desired is not JSON: ${(e as Error).message}`,
    );
  }
  return {
    name,
    type: r.type,
    desired,
    ...(r.check !== undefined ? { check: r.check } : {}),
    ...(r.fix !== undefined ? { fix: r.fix } : {}),
    dependsOn: deps.map(checkResourceName),
  };
}
