import type {
  Difference,
  DriftReport,
  Json,
  Stack,
  StackLock,
  StackStore,
  StackVersion,
} from "@sloth/stack";
import type { Argv, CommandModule } from "yargs";
import { CliError, dataDirOf, ExitCode, type GlobalArgs, rawFlagValue } from "../context.js";
import {
  eprintln,
  formatLocalTime,
  type Painter,
  painter,
  printJson,
  println,
  table,
  terminalSafe,
} from "../output.js";

interface StackArgs extends GlobalArgs {
  json?: boolean;
  /** The id of the stack lock the caller holds (printed by `lock acquire`). */
  lockId?: string;
}
type NameArgs = StackArgs & { name: string };

/** Prints a line of text from other users, control characters shown as '?' (see terminalSafe). */
function say(text: string): void {
  println(terminalSafe(text));
}

/** A table cell: a multi-line text (a hook's error, a description) on one line. */
const oneLine = (text: string) => text.replace(/\s*\n\s*/g, " ");

// @sloth/stack loads better-sqlite3 and drizzle: only when a stack command runs.
async function withStacks<T>(argv: StackArgs, fn: (s: StackStore) => T | Promise<T>): Promise<T> {
  const { openStackStore } = await import("@sloth/stack");
  const s = openStackStore({ path: (await dataDirOf(argv, true)).stacksDb });
  try {
    return await fn(s);
  } finally {
    s.close();
  }
}

const iso = (d: Date | undefined) => d?.toISOString() ?? null;
const when = (d: Date | undefined) => (d ? formatLocalTime(d) : "-");

function lockJson(l: StackLock | undefined) {
  return l ? { ...l, lockedAt: iso(l.lockedAt), expiresAt: iso(l.expiresAt) } : null;
}

function stackJson(s: Stack) {
  return {
    ...s,
    createdAt: iso(s.createdAt),
    updatedAt: iso(s.updatedAt),
    lastExecutionAt: iso(s.lastExecutionAt),
    lastRunId: s.lastRunId ?? null,
    lock: lockJson(s.lock),
  };
}

function versionJson(v: StackVersion, content = true) {
  return {
    version: v.version,
    name: v.name,
    creator: v.creator,
    description: v.description,
    createdAt: iso(v.createdAt),
    ...(content ? { content: v.content } : {}),
  };
}

function paintStatus(c: Painter, status: string): string {
  if (status === "completed" || status === "in_sync" || status === "ok") return c.green(status);
  if (status === "failed" || status === "missing" || status === "error") return c.red(status);
  if (status === "running") return c.cyan(status);
  return c.yellow(status);
}

const show = (v: Json | undefined) => (v === undefined ? "(absent)" : JSON.stringify(v));

function differenceLine(d: Difference): string {
  if (d.kind === "missing") return `- ${d.path}: ${show(d.before)}`;
  if (d.kind === "extra") return `+ ${d.path}: ${show(d.after)}`;
  return `~ ${d.path}: ${show(d.before)} -> ${show(d.after)}`;
}

function lockLine(l: StackLock): string {
  const expires = l.expiresAt ? `, expires ${formatLocalTime(l.expiresAt)}` : "";
  const stale = l.stale ? ` [stale: ${l.stale}]` : "";
  return `locked by ${l.lockedBy} since ${formatLocalTime(l.lockedAt)} (${l.operation}${l.reason ? `: ${l.reason}` : ""}${expires})${stale}`;
}

const nameArg = <T extends StackArgs>(y: Argv<T>, describe = "Stack name") =>
  y.positional("name", { type: "string", demandOption: true, describe }) as unknown as Argv<
    T & { name: string }
  >;

async function ttlOf(text: string | undefined): Promise<number | undefined> {
  if (text === undefined) return undefined;
  const { parseDuration } = await import("@sloth/client/light");
  try {
    const ms = parseDuration(text);
    const { MAX_TTL_MS } = await import("@sloth/stack");
    if (ms <= 0 || ms > MAX_TTL_MS) throw new Error("out of range");
    return ms;
  } catch {
    throw new CliError(`invalid --ttl '${text}'`, {
      hint: 'use a duration from 1s to 10 years, such as "30s", "10m" or "2h"; leave it out for a lock held until released',
      exitCode: 2,
    });
  }
}

/** A command group (`stack lock ...`): its subcommands, one of which is required. */
function group(
  name: string,
  describe: string,
  // biome-ignore lint/suspicious/noExplicitAny: yargs modules carry their own argument types
  subs: CommandModule<StackArgs, any>[],
): CommandModule<StackArgs, StackArgs> {
  return {
    command: `${name} <command>`,
    describe,
    builder: (y) => {
      for (const c of subs) y.command(c);
      return y.demandCommand(1, `missing stack ${name} command`) as unknown as Argv<StackArgs>;
    },
    handler: () => {},
  };
}

// ---- stacks ------------------------------------------------------------

function checkLimit(n: number): number {
  if (!Number.isInteger(n) || n < 1)
    throw new CliError(
      `invalid --limit '${rawFlagValue("--limit") ?? n}': expected an integer >= 1`,
      {
        exitCode: 2,
      },
    );
  return n;
}

/** Dependencies may be created later; a typo should not pass unseen. */
function warnMissing(s: StackStore, x: Stack): void {
  for (const d of x.dependsOn)
    if (!s.find(d))
      eprintln(`warning: stack '${d}' does not exist (yet); '${x.name}' depends on it`);
}

const list: CommandModule<StackArgs, StackArgs> = {
  command: ["list", "ls"],
  describe: "Every stack, with its status and lock",
  handler: (argv) =>
    withStacks(argv, (s) => {
      const stacks = s.list();
      if (argv.json) return printJson(stacks.map(stackJson));
      if (stacks.length === 0) return say("no stacks yet");
      const c = painter(process.stdout);
      const rows = stacks.map((x) => [
        x.name,
        paintStatus(c, x.status),
        String(x.executionCount),
        s.versions(x.name).at(-1)?.name ?? "-",
        when(x.lastExecutionAt),
        x.lock ? (x.lock.stale ? `stale (${x.lock.lockedBy})` : x.lock.lockedBy) : "-",
        oneLine(x.description),
      ]);
      say(
        table([
          ["NAME", "STATUS", "RUNS", "SNAPSHOT", "LAST RUN", "LOCKED BY", "DESCRIPTION"],
          ...rows,
        ]),
      );
    }),
};

const showCmd: CommandModule<StackArgs, NameArgs> = {
  command: "show <name>",
  describe: "A stack: status, state, lock, dependencies, resources, snapshots",
  builder: (y) => nameArg(y),
  handler: (argv) =>
    withStacks(argv, (s) => {
      const x = s.get(argv.name);
      const resources = s.resources(argv.name);
      const versions = s.versions(argv.name);
      if (argv.json)
        return printJson({
          ...stackJson(x),
          resources: resources.map((r) => ({ ...r, checkedAt: iso(r.checkedAt) })),
          versions: versions.map((v) => versionJson(v, false)),
        });
      const c = painter(process.stdout);
      say(`stack:        ${x.name}${x.description ? ` (${x.description})` : ""}`);
      say(`status:       ${paintStatus(c, x.status)}`);
      say(
        `runs:         ${x.executionCount}${x.status === "running" ? `, running ${x.lastRunId ?? ""} now` : x.lastRunId ? `, last ${x.lastRunId}, ended ${when(x.lastExecutionAt)}` : ""}`,
      );
      say(`created:      ${when(x.createdAt)}, updated ${when(x.updatedAt)}`);
      say(`lock:         ${x.lock ? lockLine(x.lock) : "free"}`);
      say(`depends on:   ${x.dependsOn.length > 0 ? x.dependsOn.join(", ") : "-"}`);
      say(`snapshots:    ${versions.length > 0 ? versions.map((v) => v.name).join(", ") : "-"}`);
      say(`resources:    ${resources.length > 0 ? "" : "-"}`);
      for (const r of resources)
        say(
          `  ${r.name} (${r.type}): ${r.drift ? paintStatus(c, r.drift.status) : "never checked"}`,
        );
      say("state:");
      say(JSON.stringify(x.state, null, 2));
    }),
};

const create: CommandModule<StackArgs, NameArgs & { description?: string; dependsOn?: string[] }> =
  {
    command: "create <name>",
    describe: "Create an empty stack",
    builder: (y) =>
      nameArg(y)
        .option("description", { alias: "d", type: "string", describe: "What the stack is" })
        .option("depends-on", {
          type: "string",
          array: true,
          describe: "Stacks deployed before this one",
        }),
    handler: (argv) =>
      withStacks(argv, (s) => {
        const x = s.create(argv.name, {
          ...(argv.description !== undefined ? { description: argv.description } : {}),
          dependsOn: argv.dependsOn ?? [],
        });
        warnMissing(s, x);
        if (argv.json) return printJson(stackJson(x));
        say(`stack '${x.name}' created`);
      }),
  };

const del: CommandModule<StackArgs, NameArgs & { force?: boolean }> = {
  command: ["delete <name>", "rm <name>"],
  describe: "Delete a stack with its snapshots and resources (its events stay)",
  builder: (y) =>
    nameArg(y).option("force", {
      type: "boolean",
      describe: "Even while it is locked or other stacks depend on it",
    }),
  handler: (argv) =>
    withStacks(argv, (s) => {
      s.delete(argv.name, { force: argv.force ?? false, lockId: argv.lockId });
      if (argv.json) return printJson({ deleted: argv.name });
      say(`stack '${argv.name}' deleted`);
    }),
};

const exportCmd: CommandModule<StackArgs, NameArgs & { output?: string }> = {
  command: "export <name>",
  describe: "Everything about a stack as JSON (state, snapshots, resources, events)",
  builder: (y) =>
    nameArg(y).option("output", { alias: "o", type: "string", describe: "Write to this file" }),
  handler: (argv) =>
    withStacks(argv, async (s) => {
      const e = s.export(argv.name);
      const doc = {
        ...e,
        stack: stackJson(e.stack),
        versions: e.versions.map((v) => versionJson(v)),
        resources: e.resources.map((r) => ({ ...r, checkedAt: iso(r.checkedAt) })),
        events: e.events.map((x) => ({ ...x, createdAt: iso(x.createdAt) })),
      };
      if (argv.output === undefined) return printJson(doc);
      const fs = await import("node:fs");
      fs.writeFileSync(argv.output, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 });
      say(`stack '${argv.name}' exported to ${argv.output}`);
    }),
};

const events: CommandModule<StackArgs, StackArgs & { name?: string; limit: number }> = {
  command: "events [name]",
  describe: "The audit trail, newest first (of one stack, or of all)",
  builder: (y) =>
    y.positional("name", { type: "string", describe: "Stack name" }).option("limit", {
      type: "number",
      default: 50,
      describe: "At most this many events",
    }) as never,
  handler: (argv) =>
    withStacks(argv, (s) => {
      const list = s.events({
        ...(argv.name !== undefined ? { stack: argv.name } : {}),
        limit: checkLimit(argv.limit),
      });
      // A deleted stack's events stay; a name never seen is an error.
      if (list.length === 0 && argv.name !== undefined) s.get(argv.name);
      if (argv.json) return printJson(list.map((e) => ({ ...e, createdAt: iso(e.createdAt) })));
      if (list.length === 0) return say("no events");
      const c = painter(process.stdout);
      const sev = (x: string) => (x === "error" ? c.red(x) : x === "warning" ? c.yellow(x) : x);
      say(
        table([
          ["TIME", "STACK", "EVENT", "SEVERITY", "SOURCE", "MESSAGE"],
          ...list.map((e) => [
            when(e.createdAt),
            e.stack,
            e.type,
            sev(e.severity),
            e.source,
            oneLine(e.message),
          ]),
        ]),
      );
    }),
};

// ---- locks -------------------------------------------------------------

type LockArgs = NameArgs & {
  reason?: string;
  lockedBy?: string;
  operation?: string;
  ttl?: string;
};

const lockAcquire: CommandModule<StackArgs, LockArgs> = {
  command: "acquire <name>",
  describe: "Lock a stack (held until released, or for --ttl)",
  builder: (y) =>
    nameArg(y)
      .option("reason", { type: "string", describe: "Why it is locked" })
      .option("locked-by", { type: "string", describe: "Who holds it (default: user@host)" })
      .option("operation", { type: "string", describe: 'What for (default "manual")' })
      .option("ttl", { type: "string", describe: 'Expire after this long ("30m", "2h")' }),
  handler: async (argv) => {
    const ttlMs = await ttlOf(argv.ttl);
    await withStacks(argv, (s) => {
      const l = s.lock(argv.name, {
        reason: argv.reason,
        lockedBy: argv.lockedBy,
        operation: argv.operation,
        ttlMs,
        // The CLI exits at once: the lock outlives this process.
        pid: null,
      });
      if (argv.json) return printJson(lockJson(l));
      say(`stack '${argv.name}' ${lockLine(l)}`);
      say(`lock id: ${l.lockId}`);
    });
  },
};

const lockStatus: CommandModule<StackArgs, NameArgs> = {
  command: "status <name>",
  describe: "Who holds a stack's lock",
  builder: (y) => nameArg(y),
  handler: (argv) =>
    withStacks(argv, (s) => {
      const l = s.lockStatus(argv.name);
      if (argv.json)
        return printJson({
          stack: argv.name,
          locked: l !== undefined && !l.stale,
          lock: lockJson(l),
        });
      say(l ? `stack '${argv.name}' ${lockLine(l)}` : `stack '${argv.name}' is not locked`);
    }),
};

const lockRelease: CommandModule<StackArgs, NameArgs & { lockedBy?: string; lockId?: string }> = {
  command: "release <name>",
  describe: "Release a stack's lock, as its holder",
  builder: (y) =>
    nameArg(y)
      .option("locked-by", { type: "string", describe: "The holder's name (default: user@host)" })
      .option("lock-id", { type: "string", describe: "The lock id printed by acquire" }),
  handler: (argv) =>
    withStacks(argv, async (s) => {
      const { defaultActor } = await import("@sloth/stack");
      const released = s.unlock(
        argv.name,
        argv.lockId !== undefined
          ? { lockId: argv.lockId }
          : { lockedBy: argv.lockedBy ?? defaultActor() },
      );
      if (argv.json) return printJson({ stack: argv.name, released });
      say(released ? `stack '${argv.name}' unlocked` : `stack '${argv.name}' was not locked`);
    }),
};

const lockForce: CommandModule<StackArgs, NameArgs & { reason?: string }> = {
  command: "force-release <name>",
  describe: "Release a stack's lock whoever holds it (recorded as a warning event)",
  builder: (y) => nameArg(y).option("reason", { type: "string", describe: "Why" }),
  handler: (argv) =>
    withStacks(argv, (s) => {
      const l = s.forceUnlock(argv.name, { reason: argv.reason });
      if (argv.json) return printJson({ stack: argv.name, released: lockJson(l) });
      say(
        l
          ? `lock of ${l.lockedBy} on stack '${argv.name}' released`
          : `stack '${argv.name}' was not locked`,
      );
    }),
};

const lockCmd = group("lock", "Stack locks: acquire, status, release, force-release", [
  lockAcquire,
  lockStatus,
  lockRelease,
  lockForce,
]);

// ---- snapshots ---------------------------------------------------------

type VersionArgs = NameArgs & { snapshot: string };
const versionArg = <T extends NameArgs>(y: Argv<T>) =>
  y.positional("snapshot", {
    type: "string",
    demandOption: true,
    describe: "v1, v2, ... or a number",
  }) as unknown as Argv<T & { snapshot: string }>;

const snapCreate: CommandModule<StackArgs, NameArgs & { description?: string; creator?: string }> =
  {
    command: "create <name>",
    describe: "Snapshot a stack's state and resources as the next version",
    builder: (y) =>
      nameArg(y)
        .option("description", { alias: "d", type: "string", describe: "What it is" })
        .option("creator", { type: "string", describe: "Who takes it (default: user@host)" }),
    handler: (argv) =>
      withStacks(argv, (s) => {
        const v = s.snapshot(argv.name, {
          description: argv.description,
          creator: argv.creator,
          lockId: argv.lockId,
        });
        if (argv.json) return printJson(versionJson(v));
        say(`snapshot ${v.name} of stack '${argv.name}' created`);
      }),
  };

const snapList: CommandModule<StackArgs, NameArgs> = {
  command: ["list <name>", "ls <name>"],
  describe: "A stack's snapshots, oldest first",
  builder: (y) => nameArg(y),
  handler: (argv) =>
    withStacks(argv, (s) => {
      const vs = s.versions(argv.name);
      if (argv.json) return printJson(vs.map((v) => versionJson(v, false)));
      if (vs.length === 0) return say(`stack '${argv.name}' has no snapshots`);
      say(
        table([
          ["VERSION", "CREATED", "CREATOR", "RESOURCES", "DESCRIPTION"],
          ...vs.map((v) => [
            v.name,
            when(v.createdAt),
            v.creator,
            String(v.content.resources.length),
            v.description,
          ]),
        ]),
      );
    }),
};

const snapRestore: CommandModule<StackArgs, VersionArgs> = {
  command: "restore <name> <snapshot>",
  describe: "Make a snapshot's state, dependencies and resources the current ones",
  builder: (y) => versionArg(nameArg(y)),
  handler: (argv) =>
    withStacks(argv, (s) => {
      const x = s.restore(argv.name, argv.snapshot, { lockId: argv.lockId });
      if (argv.json) return printJson(stackJson(x));
      say(
        `stack '${argv.name}' restored to ${argv.snapshot.startsWith("v") ? argv.snapshot : `v${argv.snapshot}`}`,
      );
    }),
};

const snapCompare: CommandModule<StackArgs, VersionArgs & { to: string }> = {
  command: "compare <name> <snapshot> [to]",
  describe: "What changed from one snapshot to another (default: to the current state)",
  builder: (y) =>
    versionArg(nameArg(y)).positional("to", {
      type: "string",
      default: "current",
      describe: "Second version, or current",
    }) as never,
  handler: (argv) =>
    withStacks(argv, (s) => {
      const diffs = s.compare(argv.name, argv.snapshot, argv.to);
      if (argv.json) return printJson(diffs);
      if (diffs.length === 0) return say(`no differences between ${argv.snapshot} and ${argv.to}`);
      for (const d of diffs) say(differenceLine(d));
      say(`${diffs.length} difference(s)`);
    }),
};

const snapDelete: CommandModule<StackArgs, VersionArgs> = {
  command: ["delete <name> <snapshot>", "rm <name> <snapshot>"],
  describe: "Delete a snapshot",
  builder: (y) => versionArg(nameArg(y)),
  handler: (argv) =>
    withStacks(argv, (s) => {
      s.deleteVersion(argv.name, argv.snapshot, { lockId: argv.lockId });
      if (argv.json) return printJson({ stack: argv.name, deleted: argv.snapshot });
      say(`snapshot ${argv.snapshot} of stack '${argv.name}' deleted`);
    }),
};

const snapshotCmd = group("snapshot", "Snapshots: create, list, restore, compare, delete", [
  snapCreate,
  snapList,
  snapRestore,
  snapCompare,
  snapDelete,
]);

// ---- resources ---------------------------------------------------------

type ResourceArgs = NameArgs & {
  resource: string;
  type: string;
  desired?: string;
  check?: string;
  fix?: string;
  dependsOn?: string[];
};

const resSet: CommandModule<StackArgs, ResourceArgs> = {
  command: "set <name> <resource>",
  describe: "Declare a resource: what it should be and the commands that check and fix it",
  builder: (y) =>
    (
      nameArg(y).positional("resource", {
        type: "string",
        demandOption: true,
        describe: "Resource name",
      }) as Argv<NameArgs & { resource: string }>
    )
      .option("type", {
        type: "string",
        demandOption: true,
        describe: "Its kind (service, file, ...)",
      })
      .option("desired", { type: "string", describe: "What it should be: JSON, or plain text" })
      .option("check", { type: "string", describe: "Shell command printing what it is" })
      .option("fix", { type: "string", describe: "Shell command putting it right" })
      .option("depends-on", {
        type: "string",
        array: true,
        describe: "Resources fixed before it",
      }) as never,
  handler: (argv) =>
    withStacks(argv, (s) => {
      let desired: Json = null;
      if (argv.desired !== undefined) {
        try {
          desired = JSON.parse(argv.desired) as Json;
        } catch (e) {
          // Text is text, but what looks like JSON must be JSON.
          if (/^\s*[[{"]/.test(argv.desired))
            throw new CliError(`invalid --desired: ${(e as Error).message}`, {
              hint: `give valid JSON, or plain text written as a JSON string (--desired '"text"')`,
              exitCode: 2,
            });
          desired = argv.desired;
        }
      }
      const r = s.setResource(
        argv.name,
        {
          name: argv.resource,
          type: argv.type,
          desired,
          ...(argv.check !== undefined ? { check: argv.check } : {}),
          ...(argv.fix !== undefined ? { fix: argv.fix } : {}),
          dependsOn: argv.dependsOn ?? [],
        },
        { lockId: argv.lockId },
      );
      if (argv.json) return printJson({ ...r, checkedAt: iso(r.checkedAt) });
      say(`resource '${r.name}' of stack '${argv.name}' set`);
    }),
};

const resList: CommandModule<StackArgs, NameArgs> = {
  command: ["list <name>", "ls <name>"],
  describe: "A stack's resources and what their last check found",
  builder: (y) => nameArg(y),
  handler: (argv) =>
    withStacks(argv, (s) => {
      const rs = s.resources(argv.name);
      if (argv.json) return printJson(rs.map((r) => ({ ...r, checkedAt: iso(r.checkedAt) })));
      if (rs.length === 0) return say(`stack '${argv.name}' has no resources`);
      const c = painter(process.stdout);
      say(
        table([
          ["RESOURCE", "TYPE", "DRIFT", "CHECKED", "DESIRED"],
          ...rs.map((r) => [
            r.name,
            r.type,
            r.drift ? paintStatus(c, r.drift.status) : "-",
            when(r.checkedAt),
            JSON.stringify(r.desired),
          ]),
        ]),
      );
    }),
};

const resRemove: CommandModule<StackArgs, NameArgs & { resource: string }> = {
  command: ["remove <name> <resource>", "rm <name> <resource>"],
  describe: "Remove a resource from a stack",
  builder: (y) =>
    nameArg(y).positional("resource", { type: "string", demandOption: true }) as never,
  handler: (argv) =>
    withStacks(argv, (s) => {
      s.removeResource(argv.name, argv.resource, { lockId: argv.lockId });
      if (argv.json) return printJson({ stack: argv.name, removed: argv.resource });
      say(`resource '${argv.resource}' removed from stack '${argv.name}'`);
    }),
};

const resourceCmd = group("resource", "Resources checked for drift: set, list, remove", [
  resSet,
  resList,
  resRemove,
]);

// ---- drift -------------------------------------------------------------

type DriftArgs = NameArgs & { timeout?: string; resource?: string[] };

const driftOptions = <T extends NameArgs>(y: Argv<T>) =>
  y
    .option("timeout", { type: "string", describe: 'Time allowed to each command (default "60s")' })
    .option("resource", {
      type: "string",
      array: true,
      describe: "Only this resource (repeatable)",
    });

function printDrift(r: DriftReport, json: boolean | undefined, extra: object = {}): void {
  if (json) {
    printJson({ ...r, checkedAt: iso(r.checkedAt), ...extra });
    return;
  }
  const c = painter(process.stdout);
  if (r.resources.length === 0) {
    say(`stack '${r.stack}' has no resources to check`);
    return;
  }
  for (const x of r.resources) {
    const f = x.finding;
    say(`${x.name} (${x.type}): ${paintStatus(c, f.status)}${f.message ? ` - ${f.message}` : ""}`);
    for (const d of f.differences) say(`  ${differenceLine(d)}`);
  }
  const off = r.resources.filter((x) => !["in_sync", "unchecked"].includes(x.finding.status));
  say(
    off.length === 0
      ? `stack '${r.stack}': no drift`
      : `stack '${r.stack}': ${off.length} of ${r.resources.length} resource(s) not in sync`,
  );
}

async function driftRun(argv: DriftArgs) {
  const { parseDuration } = await import("@sloth/client/light");
  let timeoutMs: number | undefined;
  if (argv.timeout !== undefined) {
    try {
      timeoutMs = parseDuration(argv.timeout);
      if (timeoutMs < 1 || timeoutMs > 2_147_483_647) throw new Error("out of range");
    } catch {
      throw new CliError(`invalid --timeout '${argv.timeout}'`, {
        hint: 'use a duration from 1ms to 24 days, such as "30s" or "5m"',
        exitCode: 2,
      });
    }
  }
  return { timeoutMs, resources: argv.resource };
}

const driftDetect: CommandModule<StackArgs, DriftArgs> = {
  command: "detect <name>",
  describe: "Run the resources' checks and compare with what they should be (exit 1 on drift)",
  builder: (y) => driftOptions(nameArg(y)) as never,
  handler: async (argv) => {
    const opts = await driftRun(argv);
    const { detectDrift } = await import("@sloth/stack");
    const { abortOnStopSignals, signalExitCode } = await import("../signals.js");
    const stop = abortOnStopSignals();
    try {
      const r = await withStacks(argv, (s) =>
        detectDrift(s, argv.name, { ...opts, signal: stop.signal }),
      );
      printDrift(r, argv.json);
      const by = stop.stoppedBy();
      if (by) throw new ExitCode(signalExitCode(by));
      if (!r.inSync) throw new ExitCode(1);
    } finally {
      stop.off();
    }
  },
};

const driftShow: CommandModule<StackArgs, NameArgs> = {
  command: "show <name>",
  describe: "What the last detection found (runs nothing)",
  builder: (y) => nameArg(y),
  handler: async (argv) => {
    const { lastDrift } = await import("@sloth/stack");
    const r = await withStacks(argv, (s) => lastDrift(s, argv.name));
    printDrift(r, argv.json);
  },
};

const driftFix: CommandModule<StackArgs, DriftArgs & { autoApprove?: boolean }> = {
  command: "fix <name>",
  describe: "Run the fix command of each resource not in sync, then check again",
  builder: (y) =>
    driftOptions(nameArg(y)).option("auto-approve", {
      type: "boolean",
      describe: "Run the fixes (without it, only show what would run)",
    }) as never,
  handler: async (argv) => {
    const opts = await driftRun(argv);
    const { detectDrift, fixDrift } = await import("@sloth/stack");
    await withStacks(argv, async (s) => {
      if (!argv.autoApprove) {
        const r = await detectDrift(s, argv.name, opts);
        const off = r.resources.filter((x) => ["drifted", "missing"].includes(x.finding.status));
        const fixes = new Map(s.resources(argv.name).map((x) => [x.name, x.fix]));
        if (argv.json)
          printJson({
            ...r,
            checkedAt: iso(r.checkedAt),
            plan: off.map((x) => ({ name: x.name, fix: fixes.get(x.name) ?? null })),
          });
        else {
          printDrift(r, false);
          for (const x of off)
            say(`would run for ${x.name}: ${fixes.get(x.name) ?? "(no fix command)"}`);
        }
        if (off.length === 0) return;
        throw new CliError("nothing was fixed: fixes run only with --auto-approve", {
          hint: `review the commands above, then run \`sloth-runner stack drift fix ${argv.name} --auto-approve\``,
        });
      }
      // One fixer at a time: the fixes run under the stack's lock (the
      // caller's own, given with --lock-id, or one taken for them).
      const lockId =
        argv.lockId ??
        s.lock(argv.name, { operation: "drift fix", reason: "stack drift fix" }).lockId;
      if (argv.lockId !== undefined && s.lockStatus(argv.name)?.lockId !== argv.lockId)
        throw new CliError(`the lock of stack '${argv.name}' is not ${argv.lockId}`, {
          hint: `see \`sloth-runner stack lock status ${argv.name}\``,
        });
      const { abortOnStopSignals, signalExitCode } = await import("../signals.js");
      const stop = abortOnStopSignals();
      try {
        const r = await fixDrift(s, argv.name, { ...opts, signal: stop.signal });
        printDrift(r, argv.json, { fixed: r.fixed, failed: r.failed });
        if (!argv.json) {
          if (r.fixed.length > 0) say(`fixed: ${r.fixed.join(", ")}`);
          for (const f of r.failed) say(`not fixed: ${f.name}: ${f.message}`);
        }
        const by = stop.stoppedBy();
        if (by) throw new ExitCode(signalExitCode(by));
        if (!r.inSync) throw new ExitCode(1);
      } finally {
        stop.off();
        if (argv.lockId === undefined) s.unlock(argv.name, { lockId });
      }
    });
  },
};

const driftCmd = group("drift", "Drift: detect, show, fix", [driftDetect, driftShow, driftFix]);

// ---- dependencies ------------------------------------------------------

const depsShow: CommandModule<StackArgs, NameArgs> = {
  command: "show <name>",
  describe: "A stack's dependencies (direct and transitive) and dependents",
  builder: (y) => nameArg(y),
  handler: (argv) =>
    withStacks(argv, (s) => {
      const d = s.dependencies(argv.name);
      if (argv.json) return printJson({ stack: argv.name, ...d, cycle: d.cycle ?? null });
      const l = (xs: string[]) => (xs.length > 0 ? xs.join(", ") : "-");
      say(`depends on:    ${l(d.direct)}`);
      say(`transitively:  ${l(d.transitive)}`);
      say(`dependents:    ${l(d.dependents)}`);
      if (d.missing.length > 0) say(`missing:       ${d.missing.join(", ")}`);
      if (d.cycle) say(`cycle:         ${d.cycle.join(" -> ")}`);
    }),
};

const depsSet: CommandModule<StackArgs, NameArgs & { deps: string[] }> = {
  command: "set <name> [deps..]",
  describe: "Set the stacks a stack depends on (none: clear them)",
  builder: (y) => nameArg(y).positional("deps", { type: "string", array: true }) as never,
  handler: (argv) =>
    withStacks(argv, (s) => {
      const x = s.update(argv.name, { dependsOn: argv.deps ?? [], lockId: argv.lockId });
      warnMissing(s, x);
      if (argv.json) return printJson(stackJson(x));
      say(
        `stack '${argv.name}' depends on ${x.dependsOn.length > 0 ? x.dependsOn.join(", ") : "nothing"}`,
      );
    }),
};

const depsCheck: CommandModule<StackArgs, NameArgs> = {
  command: "check <name>",
  describe: "Check that a stack's dependencies exist and make no cycle (exit 1 if not)",
  builder: (y) => nameArg(y),
  handler: (argv) =>
    withStacks(argv, (s) => {
      const d = s.dependencies(argv.name);
      const ok = d.missing.length === 0 && d.cycle === undefined;
      if (argv.json)
        printJson({ stack: argv.name, ok, missing: d.missing, cycle: d.cycle ?? null });
      else if (ok) say(`stack '${argv.name}': dependencies ok (${d.transitive.length})`);
      else {
        if (d.missing.length > 0) say(`missing: ${d.missing.join(", ")}`);
        if (d.cycle) say(`cycle: ${d.cycle.join(" -> ")}`);
      }
      if (!ok) throw new ExitCode(1);
    }),
};

const depsOrder: CommandModule<StackArgs, StackArgs & { names: string[] }> = {
  command: "order <names..>",
  describe: "The order to deploy stacks in, dependencies first",
  builder: (y) =>
    y.positional("names", { type: "string", array: true, demandOption: true }) as never,
  handler: (argv) =>
    withStacks(argv, (s) => {
      const order = s.order(argv.names);
      if (argv.json) return printJson(order);
      for (const [i, n] of order.entries()) say(`${i + 1}. ${n}`);
    }),
};

const GRAPH_FORMATS = ["dot", "mermaid", "png", "svg", "pdf"] as const;
type GraphFormat = (typeof GRAPH_FORMATS)[number];

const depsGraph: CommandModule<
  StackArgs,
  StackArgs & { name?: string; output?: string; format?: GraphFormat }
> = {
  command: "graph [name]",
  describe: "The dependency graph (of one stack, or of all) as DOT, Mermaid, or an image",
  builder: (y) =>
    y
      .positional("name", { type: "string", describe: "Stack name (default: every stack)" })
      .option("output", {
        alias: "o",
        type: "string",
        describe: "Write to this file (default: stdout)",
      })
      .option("format", {
        choices: GRAPH_FORMATS,
        describe: "Default: from the output's extension (.png, .svg, .pdf, .mmd, .md), else dot",
      }) as never,
  handler: async (argv) => {
    const { stackGraph, graphToDot, graphToMermaid } = await import("@sloth/stack");
    const g = await withStacks(argv, (s) => stackGraph(s, argv.name));
    if (argv.json) return printJson(g);
    const ext = argv.output?.split(".").pop()?.toLowerCase();
    const format: GraphFormat =
      argv.format ??
      (ext === "png" || ext === "svg" || ext === "pdf"
        ? ext
        : ext === "mmd" || ext === "md" || ext === "mermaid"
          ? "mermaid"
          : "dot");
    if (format === "dot" || format === "mermaid") {
      const text = format === "dot" ? graphToDot(g) : graphToMermaid(g);
      if (argv.output === undefined) {
        process.stdout.write(text);
        return;
      }
      const fs = await import("node:fs");
      fs.writeFileSync(argv.output, text);
      return say(`graph of ${g.nodes.length} stack(s) written to ${argv.output}`);
    }
    if (argv.output === undefined)
      throw new CliError(`a ${format} graph needs --output FILE`, { exitCode: 2 });
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync("dot", [`-T${format}`, "-o", argv.output], { input: graphToDot(g) });
    if ((r.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT")
      throw new CliError(`drawing a ${format} needs Graphviz's \`dot\`, which is not installed`, {
        hint: `install graphviz (apt-get install graphviz), or write DOT or Mermaid text: --output deps.dot or --output deps.mmd`,
      });
    if (r.error || r.status !== 0)
      throw new CliError(
        `dot could not draw the graph: ${r.error?.message ?? r.stderr.toString().trim().split("\n")[0]}`,
      );
    say(`graph of ${g.nodes.length} stack(s) written to ${argv.output}`);
  },
};

const depsCmd = group("deps", "Dependencies between stacks: show, set, check, order, graph", [
  depsShow,
  depsSet,
  depsCheck,
  depsOrder,
  depsGraph,
]);

// ---- validate ----------------------------------------------------------

const validate: CommandModule<StackArgs, NameArgs> = {
  command: "validate <name>",
  describe: "Pre-flight checks of a stack, or of `all` (exit 1 on an error)",
  builder: (y) => nameArg(y, "Stack name, or all"),
  handler: async (argv) => {
    const { validateStack } = await import("@sloth/stack");
    await withStacks(argv, (s) => {
      const names =
        argv.name === "all" && !s.find("all") ? s.list().map((x) => x.name) : [argv.name];
      const results = names.map((n) => ({ stack: n, checks: validateStack(s, n) }));
      const failed = results.filter((r) => r.checks.some((c) => c.level === "error"));
      if (argv.json)
        printJson(results.map((r) => ({ ...r, ok: !r.checks.some((c) => c.level === "error") })));
      else {
        const c = painter(process.stdout);
        const mark = (l: string) =>
          l === "ok" ? c.green("ok") : l === "warning" ? c.yellow("warning") : c.red("error");
        for (const r of results) {
          say(`stack '${r.stack}':`);
          for (const x of r.checks) say(`  ${mark(x.level)}  ${x.check}: ${x.message}`);
        }
        if (results.length === 0) say("no stacks to validate");
      }
      if (failed.length > 0) throw new ExitCode(1);
    });
  },
};

/** `sloth-runner stack ...`: deployment stacks in `<data dir>/stacks.db`. */
export const stackCommand: CommandModule<GlobalArgs, StackArgs> = {
  command: ["stack <command>", "stacks <command>"],
  describe: "Deployment stacks: state, snapshots, locks, drift, dependencies",
  builder: (y) =>
    y
      .option("json", { type: "boolean", describe: "Print JSON" })
      .option("lock-id", {
        type: "string",
        describe:
          "The id of the stack's lock you hold (from `lock acquire`): changes are made under it",
      })
      .command(list)
      .command(showCmd)
      .command(create)
      .command(del)
      .command(exportCmd)
      .command(events)
      .command(lockCmd)
      .command(snapshotCmd)
      .command(resourceCmd)
      .command(driftCmd)
      .command(depsCmd)
      .command(validate)
      .demandCommand(1, "missing stack command") as unknown as Argv<StackArgs>,
  handler: () => {},
};
