import type { Argv, CommandModule } from "yargs";
import { CliError, ExitCode, type GlobalArgs } from "../context.js";
import { eprintln, painter, printJson, println, table } from "../output.js";

type FileArgs = GlobalArgs & {
  file: string;
  json?: boolean | undefined;
  values?: string | string[] | undefined;
};
type ShowArgs = FileArgs & { workflow?: string | undefined; group?: string | undefined };

const fileArgs = (y: Argv<GlobalArgs>): Argv<FileArgs> =>
  y
    .positional("file", { type: "string", demandOption: true, describe: "Workflow file" })
    .option("json", { type: "boolean", describe: "Print JSON" })
    .option("values", {
      alias: "v",
      type: "string",
      describe: "Values file, YAML or JSON (repeatable: merged in order, later files win)",
    }) as Argv<FileArgs>;

async function load(argv: FileArgs) {
  const { requireFile, readValues } = await import("../run/load.js");
  const file = requireFile(argv.file);
  const values = await readValues(argv.values);
  const { loadWorkflowFile, shutdownLuaWorkers } = await import("@sloth/dsl-lua");
  try {
    return await loadWorkflowFile(file, { values });
  } finally {
    await shutdownLuaWorkers();
  }
}

const list: CommandModule<GlobalArgs, FileArgs> = {
  command: ["list <file>", "ls <file>"],
  describe: "List the workflows and groups a file defines",
  builder: fileArgs,
  handler: async (argv) => {
    const loaded = await load(argv);
    const all = [
      ...loaded.workflows.map((m) => ({ kind: "workflow", model: m })),
      ...loaded.groups.map((m) => ({ kind: "group", model: m })),
    ];
    if (argv.json) {
      return printJson(
        all.map(({ kind, model }) => ({
          name: model.name,
          kind,
          description: model.description ?? null,
          version: model.version ?? null,
          tasks: model.tasks.map((t) => t.name),
        })),
      );
    }
    for (const notice of loaded.notices) eprintln(`notice: ${notice}`);
    if (all.length === 0) {
      println("No workflows defined; declare one with workflow.define(...) or TaskDefinitions");
      return;
    }
    const c = painter(process.stdout);
    const rows = [["NAME", "KIND", "TASKS", "DESCRIPTION"].map((h) => c.bold(h))];
    for (const { kind, model } of all) {
      rows.push([model.name, kind, String(model.tasks.length), model.description ?? ""]);
    }
    println(table(rows));
  },
};

const show: CommandModule<GlobalArgs, ShowArgs> = {
  command: "show <file>",
  describe: "Show a workflow's tasks, dependencies and plan",
  builder: (y) =>
    fileArgs(y)
      .option("workflow", {
        alias: "w",
        type: "string",
        describe: "Which workflow.define workflow",
      })
      .option("group", { alias: "g", type: "string", describe: "Which TaskDefinitions group" }),
  handler: async (argv) => {
    const loaded = await load(argv);
    const { pickModels } = await import("../run/load.js");
    const { planRun } = await import("@sloth/workflow");
    // Without -w/-g, show everything the file defines.
    const models =
      argv.workflow === undefined && argv.group === undefined
        ? [...loaded.workflows, ...loaded.groups]
        : pickModels(loaded, { workflow: argv.workflow, group: argv.group });
    const { describeModel, printModel } = await import("../run/show.js");
    if (argv.json) return printJson(models.map((m) => describeModel(m, planRun(m))));
    for (const notice of loaded.notices) eprintln(`notice: ${notice}`);
    models.forEach((m, i) => {
      if (i > 0) println();
      printModel(describeModel(m, planRun(m)));
    });
  },
};

const validate: CommandModule<GlobalArgs, FileArgs> = {
  command: "validate <file>",
  describe: "Check a workflow file without running it",
  builder: fileArgs,
  handler: async (argv) => {
    const { requireFile, readValues } = await import("../run/load.js");
    const file = requireFile(argv.file);
    const values = await readValues(argv.values);
    const { validate: check, shutdownLuaWorkers } = await import("@sloth/dsl-lua");
    const { validateWorkflow, isWorkflowError } = await import("@sloth/workflow");
    let result: Awaited<ReturnType<typeof check>>;
    try {
      result = await check(file, { values });
    } finally {
      await shutdownLuaWorkers();
    }
    const problems = result.problems.map((p) => ({ code: p.code, message: p.message }));
    const warnings: string[] = [];
    const models = [...(result.loaded?.workflows ?? []), ...(result.loaded?.groups ?? [])];
    for (const model of models) {
      try {
        validateWorkflow(model);
      } catch (e) {
        if (!isWorkflowError(e)) throw e;
        if (e.code === "SLOTH_WORKFLOW_NEEDS_STACKS") warnings.push(e.message);
        // The loader reports graph problems itself, with their line: only
        // add what it did not see.
        else if (result.problems.length === 0) problems.push({ code: e.code, message: e.message });
      }
    }
    const ok = problems.length === 0;
    const tasks = models.reduce((n, m) => n + m.tasks.length, 0);
    if (argv.json) {
      printJson({
        file,
        ok,
        problems,
        warnings,
        notices: result.notices,
        workflows: models.map((m) => m.name),
        tasks,
      });
    } else {
      for (const notice of result.notices) eprintln(`notice: ${notice}`);
      for (const w of warnings) eprintln(`warning: ${w}`);
      if (ok)
        println(
          `${argv.file}: valid (${plural(models.length, "workflow")}, ${plural(tasks, "task")})`,
        );
      else for (const p of problems) eprintln(`error: ${p.message}`);
    }
    if (!ok) throw new ExitCode(1);
  },
};

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** `sloth-runner workflow list|show|validate FILE`. */
export const workflowCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: "workflow",
  describe: "Inspect workflow files: list, show, validate",
  builder: (y) =>
    y
      .command(list)
      .command(show)
      .command(validate)
      .demandCommand(1, "missing workflow subcommand (list, show, validate)"),
  handler: () => {
    throw new CliError("missing workflow subcommand", {
      hint: "run `sloth-runner workflow --help`",
      exitCode: 2,
    });
  },
};
