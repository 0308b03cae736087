import type { HistoryRunStatus, HistoryStore, RunDetail, RunRecord } from "@sloth/history";
import type { Argv, CommandModule } from "yargs";
import { CliError, dataDirOf, type GlobalArgs } from "../context.js";
import {
  eprintln,
  formatDuration,
  formatLocalTime,
  type Painter,
  painter,
  printJson,
  println,
  table,
} from "../output.js";
import { oneLine } from "../run/display.js";

interface RunsArgs extends GlobalArgs {
  json?: boolean;
}
type IdArgs = RunsArgs & { id: string };

const STATUSES = ["running", "succeeded", "failed", "aborted", "interrupted"] as const;

// @sloth/history loads better-sqlite3 and drizzle: only when a runs command runs.
async function withHistory<T>(argv: RunsArgs, fn: (h: HistoryStore) => T): Promise<T> {
  const { openHistory } = await import("@sloth/history");
  const h = openHistory({ path: (await dataDirOf(argv)).historyDb });
  try {
    return fn(h);
  } finally {
    h.close();
  }
}

const iso = (d: Date | undefined) => d?.toISOString() ?? null;

function runJson(r: RunRecord) {
  return { ...r, startedAt: iso(r.startedAt), endedAt: iso(r.endedAt) };
}

function detailJson(r: RunDetail) {
  return {
    ...runJson(r),
    tasks: r.tasks.map((t) => ({ ...t, startedAt: iso(t.startedAt), endedAt: iso(t.endedAt) })),
  };
}

function paintStatus(c: Painter, status: string): string {
  if (status === "succeeded") return c.green(status);
  if (status === "failed" || status === "aborted") return c.red(status);
  if (status === "running") return c.cyan(status);
  return c.yellow(status);
}

const duration = (ms: number | undefined) => (ms === undefined ? "-" : formatDuration(ms));

const idPositional = (y: Argv<RunsArgs>) =>
  y.positional("id", {
    type: "string",
    demandOption: true,
    describe: "Run id (a unique prefix is enough)",
  }) as unknown as Argv<IdArgs>;

const list: CommandModule<
  RunsArgs,
  RunsArgs & { workflow?: string; status?: HistoryRunStatus; limit: number }
> = {
  command: ["list", "ls"],
  describe: "Recorded runs, newest first",
  builder: (y) =>
    y
      .option("workflow", { alias: "w", type: "string", describe: "Only runs of this workflow" })
      .option("status", { alias: "s", choices: STATUSES, describe: "Only runs with this status" })
      .option("limit", { type: "number", default: 50, describe: "At most this many runs" }),
  handler: (argv) =>
    withHistory(argv, (h) => {
      const runs = h.listRuns({ workflow: argv.workflow, status: argv.status, limit: argv.limit });
      if (argv.json) return printJson(runs.map(runJson));
      if (runs.length === 0) return println("no runs recorded");
      const c = painter(process.stdout);
      const rows = runs.map((r) => [
        r.id,
        r.workflow,
        paintStatus(c, r.status),
        formatLocalTime(r.startedAt),
        duration(r.durationMs),
        r.resumedFrom ? `resumes ${r.resumedFrom}` : "",
      ]);
      println(table([["ID", "WORKFLOW", "STATUS", "STARTED", "DURATION", ""], ...rows]));
    }),
};

const show: CommandModule<RunsArgs, IdArgs> = {
  command: "show <id>",
  describe: "A run: its tasks, their state and outputs",
  builder: idPositional,
  handler: (argv) =>
    withHistory(argv, (h) => {
      const run = h.getRun(argv.id);
      if (argv.json) return printJson(detailJson(run));
      const c = painter(process.stdout);
      println(
        `${c.bold(`run ${run.id}`)}: workflow '${run.workflow}' ${paintStatus(c, run.status)}`,
      );
      if (run.message) println(`  ${run.message}`);
      if (run.file) println(`file:     ${run.file} (sha256 ${run.fileHash?.slice(0, 12) ?? "?"})`);
      println(`started:  ${formatLocalTime(run.startedAt)}, took ${duration(run.durationMs)}`);
      if (run.resumedFrom) println(`resumes:  ${run.resumedFrom}`);
      println();
      // Where each task ran, once any ran on an agent.
      const where = run.tasks.some((t) => t.agents !== undefined);
      const rows = run.tasks.map((t) => [
        t.name,
        paintStatus(c, t.reused ? "reused" : t.status),
        String(t.attempts),
        duration(t.durationMs),
        ...(where ? [t.agents?.join(",") ?? (t.attempts > 0 ? "here" : "-")] : []),
        oneLine(t.message ?? ""),
      ]);
      const head = ["TASK", "STATUS", "ATTEMPTS", "DURATION", ...(where ? ["ON"] : []), "MESSAGE"];
      println(table([head, ...rows]));
      const outputs = run.tasks.filter((t) => t.output !== undefined);
      if (outputs.length > 0) {
        println();
        println("outputs:");
        for (const t of outputs) {
          const text = JSON.stringify(t.output);
          // A task's stdout can be a megabyte: `--json` has it all.
          println(
            `  ${t.name}: ${text.length > OUTPUT_SHOWN ? `${text.slice(0, OUTPUT_SHOWN)}… (${text.length} characters; --json shows all)` : text}`,
          );
        }
      }
    }),
};

// Characters of each task output `runs show` prints.
const OUTPUT_SHOWN = 2000;

const logs: CommandModule<RunsArgs, IdArgs & { task?: string }> = {
  command: "logs <id> [task]",
  describe:
    "The stored logs of a run's tasks, then of its workflow hooks as '(workflow hooks)' (each keeps its last 64 KiB)",
  builder: (y) =>
    idPositional(y).positional("task", { type: "string", describe: "Only this task" }),
  handler: (argv) =>
    withHistory(argv, (h) => {
      const found = h.taskLogs(argv.id, argv.task);
      if (argv.json) return printJson(found);
      const cut = (size: number, text: string) =>
        `first ${size - Buffer.byteLength(text)} of ${size} bytes not kept`;
      if (argv.task !== undefined) {
        const [one] = found;
        if (one?.truncated) eprintln(`notice: ${cut(one.size, one.text)}`);
        process.stdout.write(one?.text ?? "");
        return;
      }
      const c = painter(process.stdout);
      for (const l of found.filter((x) => x.size > 0)) {
        const note = l.truncated ? ` (${cut(l.size, l.text)})` : "";
        println(c.bold(`== ${l.task}${note}`));
        process.stdout.write(l.text.endsWith("\n") ? l.text : `${l.text}\n`);
      }
    }),
};

const prune: CommandModule<RunsArgs, RunsArgs & { olderThan: string }> = {
  command: "prune",
  describe: "Delete finished runs older than a duration, with their artifacts",
  builder: (y) =>
    y.option("older-than", {
      type: "string",
      demandOption: true,
      describe: 'Age of the runs to delete ("30d", "12h")',
    }) as unknown as Argv<RunsArgs & { olderThan: string }>,
  handler: async (argv) => {
    const { parseDuration } = await import("@sloth/client");
    let age: number;
    try {
      age = parseDuration(argv.olderThan);
    } catch {
      throw new CliError(`invalid --older-than '${argv.olderThan}'`, {
        hint: "use a duration such as 30d, 12h or 90m",
        exitCode: 2,
      });
    }
    const ids = await withHistory(argv, (h) => h.prune(new Date(Date.now() - age)));
    const { runs } = await dataDirOf(argv);
    const fs = await import("node:fs");
    const path = await import("node:path");
    // Artifacts of pruned runs go too; a failed removal leaves only files.
    for (const id of ids) fs.rmSync(path.join(runs, id), { recursive: true, force: true });
    if (argv.json) return printJson({ pruned: ids });
    println(`pruned ${ids.length} ${ids.length === 1 ? "run" : "runs"}`);
  },
};

/** `sloth-runner runs ...`: the run history in `<data dir>/history.db`. */
export const runsCommand: CommandModule<GlobalArgs, RunsArgs> = {
  command: "runs <command>",
  describe: "Run history: list, show, logs, prune (resume with `run --resume ID`)",
  builder: (y) =>
    y
      .option("json", { type: "boolean", describe: "Print JSON" })
      .command(list)
      .command(show)
      .command(logs)
      .command(prune)
      .demandCommand(1, "missing runs command") as unknown as Argv<RunsArgs>,
  handler: () => {},
};
