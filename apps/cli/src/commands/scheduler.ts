import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type {
  Launcher,
  RunSpec,
  Schedule,
  ScheduleRun,
  SchedulerEvent,
  ScheduleStore,
} from "@sloth/scheduler";
import type { Argv, CommandModule } from "yargs";
import { CliError, dataDirOf, ExitCode, type GlobalArgs, parseKeyValues } from "../context.js";
import {
  eprintln,
  formatDuration,
  formatLocalTime,
  painter,
  printJson,
  println,
  table,
  terminalSafe,
} from "../output.js";
import { abortOnStopSignals } from "../signals.js";

interface SchedulerArgs extends GlobalArgs {
  json?: boolean;
}
type NameArgs = SchedulerArgs & { name: string };

interface SpecArgs {
  file?: string;
  values?: string[];
  param?: string[];
  workflow?: string;
  group?: string;
  task?: string[];
  stack?: string;
  secretsEnv?: string;
}

/** Prints a line with control characters shown as '?' (names and messages come from files). */
function say(text: string): void {
  println(terminalSafe(text));
}

// @sloth/scheduler loads better-sqlite3, drizzle and croner: only when a scheduler command runs.
async function withSchedules<T>(
  argv: SchedulerArgs,
  fn: (s: ScheduleStore) => T | Promise<T>,
): Promise<T> {
  const { openScheduleStore } = await import("@sloth/scheduler");
  const s = openScheduleStore({ path: (await dataDirOf(argv, true)).schedulesDb });
  try {
    return await fn(s);
  } finally {
    s.close();
  }
}

const iso = (d: Date | undefined) => d?.toISOString() ?? null;
const when = (d: Date | undefined) => (d ? formatLocalTime(d) : "-");

function runJson(r: ScheduleRun) {
  return {
    ...r,
    dueAt: iso(r.dueAt),
    startedAt: iso(r.startedAt),
    endedAt: iso(r.endedAt),
    exitCode: r.exitCode ?? null,
    runId: r.runId ?? null,
  };
}

function scheduleJson(s: Schedule) {
  return {
    ...s,
    timezone: s.timezone ?? null,
    createdAt: iso(s.createdAt),
    updatedAt: iso(s.updatedAt),
    nextRunAt: iso(s.nextRunAt),
    lastRun: s.lastRun ? runJson(s.lastRun) : null,
  };
}

function cronText(s: Schedule): string {
  return s.timezone ? `${s.cron} (${s.timezone})` : s.cron;
}

function runText(r: ScheduleRun | undefined): string {
  if (!r) return "-";
  const took = r.endedAt
    ? ` in ${formatDuration(r.endedAt.getTime() - r.startedAt.getTime())}`
    : "";
  return `${r.status}${r.status === "running" || r.status === "skipped" ? "" : took} at ${formatLocalTime(r.startedAt)}`;
}

/** A path given on the command line, made absolute; it must exist as a file. */
function existingFile(p: string, what: string): string {
  const abs = path.resolve(p);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    throw new CliError(`cannot schedule ${p}: no such ${what}`, {
      hint: `check the path (it is stored as ${abs})`,
      exitCode: 2,
    });
  }
  if (!st.isFile())
    throw new CliError(`cannot schedule ${p}: not a file`, {
      hint: `give the ${what}`,
      exitCode: 2,
    });
  return abs;
}

/** Repeatable option values; with `commas`, also comma-separated (task names). */
function list(v: string | string[] | undefined, commas = false): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v])
    .flatMap((x) => (commas ? x.split(",") : [x]))
    .filter((x) => x !== "");
}

/** A name passed to the run (stack, workflow, group, task): never taken for an option. */
function runName(v: string, flag: string): string {
  if (v.startsWith("-") || terminalSafe(v) !== v)
    throw new CliError(
      `invalid ${flag} '${terminalSafe(v)}': a name cannot start with '-' or hold control characters`,
      {
        exitCode: 2,
      },
    );
  return v;
}

function specOf(a: SpecArgs): RunSpec {
  if (!a.file) throw new CliError("missing -f FILE: the workflow file to run", { exitCode: 2 });
  const spec: RunSpec = { file: existingFile(a.file, "workflow file"), cwd: process.cwd() };
  return { ...spec, ...optionsOf(a) };
}

/** The run options given on the command line (not the file), checked. */
function optionsOf(a: SpecArgs): Partial<RunSpec> {
  const out: Partial<RunSpec> = {};
  if (a.values !== undefined)
    out.values = list(a.values).map((v) => existingFile(v, "values file"));
  if (a.param !== undefined) out.params = parseKeyValues(a.param, "--param");
  if (a.workflow !== undefined) out.workflow = a.workflow && runName(a.workflow, "--workflow");
  if (a.group !== undefined) out.group = a.group && runName(a.group, "--group");
  if (a.task !== undefined) out.tasks = list(a.task, true).map((t) => runName(t, "--task"));
  if (a.stack !== undefined) {
    if (a.stack && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(a.stack))
      throw new CliError(
        `invalid --stack '${terminalSafe(a.stack)}': use letters, digits, '.', '_' and '-'`,
        {
          exitCode: 2,
        },
      );
    out.stack = a.stack;
  }
  if (a.secretsEnv !== undefined) {
    if (a.secretsEnv && !/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/.test(a.secretsEnv))
      throw new CliError(
        `invalid --secrets-env '${terminalSafe(a.secretsEnv)}': use letters, digits, '_' and '-'`,
        { exitCode: 2 },
      );
    out.secretsEnv = a.secretsEnv;
  }
  return out;
}

function specOptions<T>(y: Argv<T>, fileRequired: boolean) {
  return y
    .option("file", {
      alias: "f",
      type: "string",
      describe: "Workflow file to run",
      demandOption: fileRequired ? "give the workflow file with -f FILE" : false,
    })
    .option("values", {
      alias: "v",
      type: "string",
      array: true,
      describe: "Values file (repeatable)",
    })
    .option("param", {
      type: "string",
      array: true,
      describe: "Task parameter KEY=VALUE (repeatable)",
    })
    .option("workflow", {
      alias: "w",
      type: "string",
      describe: "Run this workflow.define workflow",
    })
    .option("group", {
      alias: "g",
      type: "string",
      describe: "Run only this TaskDefinitions group",
    })
    .option("task", { alias: "t", type: "string", array: true, describe: "Run only these tasks" })
    .option("stack", { type: "string", describe: "Deploy as this stack (run STACK -f FILE)" })
    .option("secrets-env", {
      type: "string",
      describe: "The environment whose secrets the runs read (run --secrets-env)",
    })
    .option("timezone", {
      type: "string",
      describe: "IANA time zone the cron expression is read in (default: local time)",
    })
    .option("description", { type: "string", describe: "What the schedule is for" });
}

/** The arguments of `sloth-runner run` for a schedule's spec. */
export function runArgs(spec: RunSpec, dataDir: string): string[] {
  // Every value in its option's `--name=value` form: never read as an option.
  const args = ["run"];
  if (spec.stack) args.push(spec.stack, `--file=${spec.file}`);
  else args.push(`--file=${spec.file}`);
  for (const v of spec.values ?? []) args.push(`--values=${v}`);
  for (const [k, v] of Object.entries(spec.params ?? {})) args.push(`--param=${k}=${v}`);
  if (spec.workflow) args.push(`--workflow=${spec.workflow}`);
  if (spec.group) args.push(`--group=${spec.group}`);
  for (const t of spec.tasks ?? []) args.push(`--task=${t}`);
  if (spec.secretsEnv) args.push(`--secrets-env=${spec.secretsEnv}`);
  args.push(`--data-dir=${dataDir}`);
  return args;
}

const TAIL = 64 * 1024;

/**
 * Runs `sloth-runner run` for a schedule as a child process: the same CLI,
 * the same data dir. `echo` copies its output here (a run by hand). The
 * run's id is read from its closing "run id:" line; a failure keeps the last
 * error line it printed. The abort sends SIGTERM (the run stops its tasks and
 * records itself), then SIGKILL after 10 s.
 */
function cliLauncher(dataDir: string, echo: boolean): Launcher {
  const bin = fileURLToPath(new URL("../../bin/sloth-runner.js", import.meta.url));
  return (schedule, _run, signal, started) =>
    new Promise((resolve, reject) => {
      const cwd =
        schedule.spec.cwd && fs.existsSync(schedule.spec.cwd)
          ? schedule.spec.cwd
          : path.dirname(schedule.spec.file);
      if (!fs.existsSync(cwd)) {
        reject(
          new Error(
            `cannot start the run: its folder ${cwd} is gone (and the workflow file with it)`,
          ),
        );
        return;
      }
      const child = spawn(process.execPath, [bin, ...runArgs(schedule.spec, dataDir)], {
        cwd,
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          ...process.env,
          NO_COLOR: echo ? process.env.NO_COLOR : "1",
          SLOTH_SCHEDULE: schedule.name,
        },
      });
      if (child.pid !== undefined) started?.(child.pid);
      let out = "";
      let err = "";
      child.stdout.on("data", (b: Buffer) => {
        if (echo) process.stdout.write(b);
        out = (out + b.toString("utf8")).slice(-TAIL);
      });
      child.stderr.on("data", (b: Buffer) => {
        if (echo) process.stderr.write(b);
        err = (err + b.toString("utf8")).slice(-TAIL);
      });
      let killer: NodeJS.Timeout | undefined;
      const stop = () => {
        child.kill("SIGTERM");
        killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        killer.unref();
      };
      signal.addEventListener("abort", stop, { once: true });
      child.once("error", (e) => {
        signal.removeEventListener("abort", stop);
        reject(new Error(`cannot start sloth-runner run: ${e.message}`));
      });
      child.once("close", (code, sig) => {
        signal.removeEventListener("abort", stop);
        clearTimeout(killer);
        // biome-ignore lint/suspicious/noControlCharactersInRegex: colour codes, when echoed output kept them
        const plain = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, "");
        const runId = /^run id: (\S+)\s*$/m.exec(plain(out))?.[1];
        const lines = (text: string) =>
          plain(text)
            .split("\n")
            .map((l) => l.trim())
            .filter((l) => l !== "");
        // Why it failed: its last error line, else its closing line ("workflow 'x' failed ...").
        const lastError =
          lines(err).at(-1) ??
          lines(out)
            .filter((l) => !l.startsWith("run id:"))
            .at(-1);
        const stopped = signal.aborted ? "stopped with the scheduler" : undefined;
        if (sig) resolve({ exitCode: null, runId, message: stopped ?? `stopped by ${sig}` });
        else if (code === 0) resolve({ exitCode: 0, runId });
        else if (stopped)
          resolve({ exitCode: code, runId, message: `${stopped} (exit code ${code})` });
        else
          resolve({
            exitCode: code,
            runId,
            message: lastError
              ? `exit code ${code}: ${lastError.replace(/^error:\s*/, "")}`.slice(0, 500)
              : `exit code ${code}`,
          });
      });
    });
}

// ---- commands ------------------------------------------------------------

const add: CommandModule<
  SchedulerArgs,
  NameArgs &
    SpecArgs & { cron: string; timezone?: string; description?: string; disabled?: boolean }
> = {
  command: "add <name>",
  describe: "Add a schedule: run a workflow file at the times a cron expression gives",
  builder: (y) =>
    specOptions(
      y
        .positional("name", { type: "string", demandOption: true, describe: "Schedule name" })
        .option("cron", {
          type: "string",
          demandOption: 'give the times with --cron, such as --cron "30 2 * * *"',
          describe:
            'Cron expression: 5 fields ("30 2 * * *"), 6 with seconds first, or @hourly, @daily, @weekly',
        })
        .option("disabled", { type: "boolean", describe: "Add it switched off (enable it later)" }),
      true,
    ) as unknown as Argv<NameArgs & SpecArgs & { cron: string }>,
  handler: async (argv) => {
    const spec = specOf(argv);
    await withSchedules(argv, async (store) => {
      const s = store.add({
        name: argv.name,
        cron: argv.cron,
        timezone: argv.timezone,
        spec,
        description: argv.description,
        enabled: !argv.disabled,
      });
      if (argv.json) return printJson(scheduleJson(s));
      say(`schedule '${s.name}' added: ${cronText(s)}, runs ${s.spec.file}`);
      await showNext(s);
      if (s.enabled && !store.scheduler())
        say("no scheduler runs yet: start one with `sloth-runner scheduler start`");
    });
  },
};

async function showNext(s: Schedule): Promise<void> {
  if (!s.enabled) {
    say("it is disabled: `sloth-runner scheduler enable` switches it on");
    return;
  }
  const { nextRunsOf } = await import("@sloth/scheduler");
  const next = nextRunsOf(s.cron, s.timezone, 3);
  say(next.length ? `next runs: ${next.map(formatLocalTime).join(", ")}` : "it has no next run");
}

const update: CommandModule<
  SchedulerArgs,
  NameArgs &
    SpecArgs & { cron?: string; timezone?: string; localTime?: boolean; description?: string }
> = {
  command: "update <name>",
  describe:
    "Change a schedule's times, workflow file or options (only those given; an empty value clears one)",
  builder: (y) =>
    specOptions(
      y
        .positional("name", { type: "string", demandOption: true, describe: "Schedule name" })
        .option("cron", { type: "string", describe: "New cron expression" })
        .option("local-time", {
          type: "boolean",
          describe: "Read the expression in the scheduler's local time (drops --timezone)",
        }),
      false,
    ) as unknown as Argv<NameArgs & SpecArgs>,
  handler: async (argv) => {
    const specGiven =
      argv.file !== undefined ||
      argv.values !== undefined ||
      argv.param !== undefined ||
      argv.workflow !== undefined ||
      argv.group !== undefined ||
      argv.task !== undefined ||
      argv.stack !== undefined ||
      argv.secretsEnv !== undefined;
    if (argv.timezone !== undefined && argv.localTime)
      throw new CliError("give --timezone or --local-time, not both", { exitCode: 2 });
    await withSchedules(argv, (store) => {
      const before = store.get(argv.name);
      let spec: RunSpec | undefined;
      if (specGiven) {
        // What is given changes; the rest, and the folder runs start in, stay.
        spec = { ...before.spec, ...optionsOf(argv) };
        if (argv.file !== undefined) spec.file = existingFile(argv.file, "workflow file");
        for (const k of ["values", "tasks"] as const) if (spec[k]?.length === 0) delete spec[k];
        if (spec.params && Object.keys(spec.params).length === 0) delete spec.params;
        for (const k of ["workflow", "group", "stack", "secretsEnv"] as const)
          if (spec[k] === "") delete spec[k];
      }
      const s = store.update(argv.name, {
        cron: argv.cron,
        timezone: argv.localTime ? null : argv.timezone,
        spec,
        description: argv.description,
      });
      if (argv.json) return printJson(scheduleJson(s));
      say(`schedule '${s.name}' updated: ${cronText(s)}, runs ${s.spec.file}`);
      if (s.enabled) say(`next run: ${when(s.nextRunAt)}`);
    });
  },
};

const listCmd: CommandModule<SchedulerArgs, SchedulerArgs> = {
  command: ["list", "ls"],
  describe: "List schedules: times, next run, last run",
  handler: async (argv) => {
    await withSchedules(argv, (store) => {
      // Runs whose scheduler and process are gone show as lost, not running.
      store.settleLost();
      const all = store.list();
      const holder = store.scheduler();
      if (argv.json) {
        printJson({
          scheduler: holder ? { ...holder, startedAt: iso(holder.startedAt) } : null,
          schedules: all.map(scheduleJson),
        });
        return;
      }
      if (all.length === 0)
        say("no schedules (add one with `sloth-runner scheduler add NAME --cron EXPR -f FILE`)");
      else {
        const rows = [["NAME", "CRON", "ENABLED", "NEXT RUN", "LAST RUN", "FILE"]];
        for (const s of all)
          rows.push([
            s.name,
            cronText(s),
            s.error ? "broken" : s.enabled ? "yes" : "no",
            s.enabled && !s.error ? when(s.nextRunAt) : "-",
            runText(s.lastRun),
            s.spec.file || "-",
          ]);
        say(table(rows).trimEnd());
        for (const s of all) if (s.error) say(`schedule '${s.name}': ${s.error}`);
      }
      say(
        holder
          ? `scheduler: running (pid ${holder.pid} on ${holder.host}, since ${formatLocalTime(holder.startedAt)})`
          : "scheduler: not running (start it with `sloth-runner scheduler start`)",
      );
    });
  },
};

const show: CommandModule<SchedulerArgs, NameArgs & { limit: number }> = {
  command: "show <name>",
  describe: "Show a schedule and its recent runs",
  builder: (y) =>
    y
      .positional("name", { type: "string", demandOption: true, describe: "Schedule name" })
      .option("limit", {
        type: "number",
        default: 20,
        describe: "Recent runs to show",
      }) as unknown as Argv<NameArgs & { limit: number }>,
  handler: async (argv) => {
    if (!Number.isInteger(argv.limit) || argv.limit < 1)
      throw new CliError("invalid --limit: expected an integer >= 1", { exitCode: 2 });
    await withSchedules(argv, async (store) => {
      store.settleLost();
      const s = store.get(argv.name);
      const runs = store.runs(s.name, argv.limit);
      if (argv.json) {
        printJson({ ...scheduleJson(s), runs: runs.map(runJson) });
        return;
      }
      const { nextRunsOf } = await import("@sloth/scheduler");
      say(`schedule:    ${s.name}${s.description ? ` (${s.description})` : ""}`);
      say(`cron:        ${cronText(s)}`);
      say(`enabled:     ${s.enabled ? "yes" : "no"}`);
      if (s.error) say(`error:       ${s.error}`);
      say(`runs:        sloth-runner ${runArgs(s.spec, "DIR").slice(0, -1).join(" ")}`);
      say(`in:          ${s.spec.cwd ?? path.dirname(s.spec.file)}`);
      if (s.enabled) {
        let next: Date[] = [];
        try {
          next = nextRunsOf(s.cron, s.timezone, 3);
        } catch {
          next = [];
        }
        say(`next runs:   ${next.length ? next.map(formatLocalTime).join(", ") : "none"}`);
      }
      if (runs.length === 0) {
        say("no runs yet");
        return;
      }
      const rows = [["#", "TRIGGER", "DUE", "STARTED", "TOOK", "STATUS", "RUN ID", "MESSAGE"]];
      for (const r of runs)
        rows.push([
          String(r.id),
          r.trigger,
          when(r.dueAt),
          formatLocalTime(r.startedAt),
          r.endedAt && r.status !== "skipped"
            ? formatDuration(r.endedAt.getTime() - r.startedAt.getTime())
            : "-",
          r.status,
          r.runId ?? "-",
          r.message.replace(/\s*\n\s*/g, " ") || "-",
        ]);
      say(table(rows).trimEnd());
    });
  },
};

const del: CommandModule<SchedulerArgs, NameArgs> = {
  command: ["delete <name>", "remove <name>", "rm <name>"],
  describe: "Delete a schedule and its run history (the workflow runs stay in `runs`)",
  builder: (y) =>
    y.positional("name", { type: "string", demandOption: true }) as unknown as Argv<NameArgs>,
  handler: async (argv) => {
    await withSchedules(argv, (store) => {
      store.delete(argv.name);
      if (argv.json) printJson({ deleted: argv.name });
      else say(`schedule '${argv.name}' deleted`);
    });
  },
};

function toggle(enabled: boolean): CommandModule<SchedulerArgs, NameArgs> {
  return {
    command: `${enabled ? "enable" : "disable"} <name>`,
    describe: enabled ? "Switch a schedule on (from its next slot)" : "Switch a schedule off",
    builder: (y) =>
      y.positional("name", { type: "string", demandOption: true }) as unknown as Argv<NameArgs>,
    handler: async (argv) => {
      await withSchedules(argv, (store) => {
        const s = store.update(argv.name, { enabled });
        if (argv.json) return printJson(scheduleJson(s));
        say(
          enabled
            ? `schedule '${s.name}' enabled: next run ${when(s.nextRunAt)}`
            : `schedule '${s.name}' disabled`,
        );
      });
    },
  };
}

const runNow: CommandModule<SchedulerArgs, NameArgs> = {
  command: "run <name>",
  describe: "Run a schedule once now, in the foreground, and record it",
  builder: (y) =>
    y.positional("name", { type: "string", demandOption: true }) as unknown as Argv<NameArgs>,
  handler: async (argv) => {
    const dataDir = (await dataDirOf(argv, true)).root;
    const { runScheduleNow } = await import("@sloth/scheduler");
    const stop = abortOnStopSignals();
    try {
      const run = await withSchedules(argv, (store) =>
        runScheduleNow(store, argv.name, cliLauncher(dataDir, !argv.json), stop.signal),
      );
      if (argv.json) printJson(runJson(run));
      else if (run.status !== "succeeded")
        eprintln(`schedule '${argv.name}': ${run.status}: ${run.message}`);
      if (run.status !== "succeeded")
        throw new ExitCode(stop.stoppedBy() ? 130 : (run.exitCode ?? 1));
    } finally {
      stop.off();
    }
  },
};

const start: CommandModule<SchedulerArgs, SchedulerArgs> = {
  command: "start",
  describe: "Run the scheduler in the foreground: start each schedule's runs on time",
  handler: async (argv) => {
    const dir = await dataDirOf(argv, true);
    const { openScheduleStore, runScheduler } = await import("@sloth/scheduler");
    const store = openScheduleStore({ path: dir.schedulesDb });
    const stop = abortOnStopSignals();
    const c = painter(process.stdout);
    const stamp = () => formatLocalTime(new Date());
    // Names and messages are cleaned before colouring, so the colours stay.
    const line = (text: string) => (argv.json ? undefined : println(`${stamp()} ${text}`));
    const onEvent = (event: SchedulerEvent) => {
      if (argv.json) {
        // One JSON object per line.
        const at = new Date().toISOString();
        println(
          JSON.stringify(
            "run" in event ? { ...event, at, run: runJson(event.run) } : { ...event, at },
          ),
        );
        return;
      }
      const e = cleanEvent(event);
      switch (e.type) {
        case "started":
          line(
            `scheduler started: ${e.schedules} enabled schedule(s), data dir ${terminalSafe(dir.root)}`,
          );
          break;
        case "lost":
          line(`${e.count} run(s) left running by an earlier scheduler marked lost`);
          break;
        case "run-started":
          line(`${e.schedule}: started (due ${when(e.run.dueAt)})`);
          break;
        case "run-ended": {
          const r = e.run;
          const took = r.endedAt ? formatDuration(r.endedAt.getTime() - r.startedAt.getTime()) : "";
          const id = r.runId ? ` (run ${r.runId})` : "";
          if (r.status === "succeeded")
            line(`${e.schedule}: ${c.green("succeeded")} in ${took}${id}`);
          else
            line(
              `${e.schedule}: ${r.status === "stopped" ? c.yellow(r.status) : c.red(r.status)} in ${took}${id}: ${r.message}`,
            );
          break;
        }
        case "skipped":
          line(
            `${e.schedule}: ${c.yellow("skipped")} the run due ${when(e.run.dueAt)}: ${e.run.message}`,
          );
          break;
        case "error":
          line(`${e.schedule ? `${e.schedule}: ` : ""}${c.red("error")}: ${e.message}`);
          break;
        case "stopped":
          line("scheduler stopped");
          break;
      }
    };
    stop.signal.addEventListener("abort", () => line("stopping: waiting for the runs under way"), {
      once: true,
    });
    try {
      await runScheduler({
        store,
        launch: cliLauncher(dir.root, false),
        signal: stop.signal,
        onEvent,
      });
    } finally {
      stop.off();
      store.close();
    }
  },
};

/** The event with its names and messages shown safely on a terminal. */
function cleanEvent(e: SchedulerEvent): SchedulerEvent {
  const out = { ...e } as SchedulerEvent & {
    schedule?: string;
    message?: string;
    run?: ScheduleRun;
  };
  if (out.schedule !== undefined) out.schedule = terminalSafe(out.schedule);
  if (out.message !== undefined) out.message = terminalSafe(out.message);
  if (out.run !== undefined)
    out.run = {
      ...out.run,
      message: terminalSafe(out.run.message),
      runId: out.run.runId === undefined ? undefined : terminalSafe(out.run.runId),
    };
  return out;
}

/** `sloth-runner scheduler ...`: recurring runs in `<data dir>/schedules.db`. */
export const schedulerCommand: CommandModule<GlobalArgs, SchedulerArgs> = {
  command: ["scheduler <command>", "schedule <command>"],
  describe: "Recurring workflow runs on cron schedules",
  builder: (y) =>
    y
      .option("json", { type: "boolean", describe: "Print JSON" })
      .command(add)
      .command(update)
      .command(listCmd)
      .command(show)
      .command(del)
      .command(toggle(true))
      .command(toggle(false))
      .command(runNow)
      .command(start)
      .demandCommand(1, "missing scheduler command") as unknown as Argv<SchedulerArgs>,
  handler: () => {},
};
