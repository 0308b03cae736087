import type { LoadedWorkflows } from "@sloth/dsl-lua";
import type { WorkflowModel } from "@sloth/workflow";
import type { CommandModule } from "yargs";
import {
  CliError,
  dataDirOf,
  ExitCode,
  type GlobalArgs,
  parseKeyValues,
  rawFlagValue,
} from "../context.js";
import type { LineLogger } from "../logger.js";
import { eprintln } from "../output.js";

/** Arguments of `sloth-runner run`. */
export interface RunArgs extends GlobalArgs {
  lockId?: string;
  target?: string | undefined;
  file?: string | undefined;
  group?: string | undefined;
  workflow?: string | undefined;
  // Not yargs arrays: those would swallow a following positional FILE.
  task?: string | string[] | undefined;
  values?: string | string[] | undefined;
  param?: string | string[] | undefined;
  maxParallel?: number | undefined;
  failFast?: boolean | undefined;
  dryRun?: boolean | undefined;
  output?: "text" | "json" | undefined;
  history?: boolean | undefined;
  resume?: string | undefined;
  force?: boolean | undefined;
  delegateTo?: string | string[] | undefined;
  workspaceLimit?: string | undefined;
  secretsEnv?: string | undefined;
}

/** `sloth-runner run FILE` / `run [stack] -f FILE`: runs a workflow file. */
export const runCommand: CommandModule<GlobalArgs, RunArgs> = {
  command: "run [target]",
  describe: "Run a workflow file (run FILE, or run STACK -f FILE)",
  builder: (y) =>
    y
      .positional("target", { type: "string", describe: "Workflow file, or a stack name with -f" })
      .option("file", { alias: "f", type: "string", describe: "Workflow file (.sloth or .lua)" })
      .option("group", {
        alias: "g",
        type: "string",
        describe: "Run only this TaskDefinitions group",
      })
      .option("workflow", {
        alias: "w",
        type: "string",
        describe: "Run this workflow.define workflow",
      })
      .option("task", {
        alias: "t",
        type: "string",
        describe: "Run only these tasks and what they depend on (repeatable, or comma-separated)",
      })
      .option("values", {
        alias: "v",
        type: "string",
        describe: "Values file, YAML or JSON (repeatable: merged in order, later files win)",
      })
      .option("param", { type: "string", describe: "Task parameter KEY=VALUE (repeatable)" })
      .option("max-parallel", {
        type: "number",
        describe: "Tasks running at once (default: the workflow's, else 4)",
      })
      .option("fail-fast", {
        type: "boolean",
        describe: "Cancel everything after the first failure",
      })
      .option("dry-run", {
        type: "boolean",
        describe: "Print the plan: order, parallel levels, where tasks run",
      })
      .option("output", {
        alias: "o",
        choices: ["text", "json"] as const,
        default: "text" as const,
        describe: "Output format; json prints NDJSON events and a summary",
      })
      .option("master", {
        type: "string",
        describe:
          "Master for delegated tasks (default: $SLOTH_RUNNER_MASTER_ADDR, the selected master, localhost:50053)",
      })
      .option("delegate-to", {
        type: "string",
        describe: "Run every task without its own delegate_to on this agent (repeatable: on each)",
      })
      .option("token-file", { type: "string", describe: "Cluster token file for delegated tasks" })
      .option("lock-id", {
        type: "string",
        describe: "Deploy the stack under the lock you hold (the id `stack lock acquire` printed)",
      })
      .option("workspace-limit", {
        type: "string",
        describe:
          "Refuse to ship a delegated task's workspace, or take its changes back, larger than this (such as 500MB, 2GB; default: no limit out, 4GB back)",
      })
      .option("tls-ca", {
        type: "string",
        describe: "CA certificate to verify the master and agents",
      })
      .option("tls-cert", { type: "string", describe: "Client certificate for mTLS" })
      .option("tls-key", { type: "string", describe: "Private key of --tls-cert" })
      .option("secrets-env", {
        type: "string",
        describe:
          "The environment whose secrets `secrets.get` reads (default: $SLOTH_RUNNER_SECRETS_ENV, else default)",
      })
      .option("history", {
        type: "boolean",
        default: true,
        describe: "Record the run in <data dir>/history.db (--no-history: do not)",
      })
      .option("resume", {
        type: "string",
        describe:
          "Re-run what did not succeed in this recorded run, reusing the outputs of the rest",
      })
      .option("force", {
        type: "boolean",
        describe: "With --resume: resume even though the workflow file changed",
      }),
  handler: async (argv) => {
    const code = await runFile(argv);
    if (code !== 0) throw new ExitCode(code);
  },
};

async function runFile(argv: RunArgs): Promise<number> {
  const { resolveRunTarget, readValues, pickModels, isFile } = await import("../run/load.js");
  if (argv.resume !== undefined && (argv.workflow !== undefined || argv.group !== undefined))
    throw new CliError(
      `--resume runs the workflow of that run again: ${argv.workflow !== undefined ? "-w" : "-g"} cannot pick another`,
      { hint: "drop -w/-g, or run the other workflow anew", exitCode: 2 },
    );
  // With --resume, a positional that is not a file names the stack (the
  // resumed run's own stack otherwise), and -f or a file positional the file.
  const positionalIsFile = argv.target !== undefined && isFile(argv.target);
  const resume =
    argv.resume === undefined
      ? undefined
      : await (await import("../run/record.js")).loadResume(
          (await dataDirOf(argv)).historyDb,
          argv.resume,
          {
            force: argv.force ?? false,
            file: argv.file ?? (positionalIsFile ? argv.target : undefined),
          },
        );
  const target = resume
    ? {
        file: resume.file,
        stack: argv.target !== undefined && !positionalIsFile ? argv.target : resume.run.stack,
      }
    : resolveRunTarget(argv.target, argv.file);
  if (argv.lockId !== undefined && target.stack === undefined)
    throw new CliError("--lock-id names the lock of the stack a run deploys", {
      hint: "run it as `sloth-runner run STACK -f FILE --lock-id ID`",
      exitCode: 2,
    });
  if (target.stack !== undefined) {
    const { checkStackName } = await import("@sloth/stack");
    try {
      checkStackName(target.stack);
    } catch (e) {
      throw new CliError((e as Error).message, {
        hint: "a stack name has 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        exitCode: 2,
      });
    }
  }
  const maxParallel = argv.maxParallel;
  if (maxParallel !== undefined && (!Number.isInteger(maxParallel) || maxParallel < 1)) {
    // yargs turns "abc" into NaN: show what was typed.
    const raw = rawFlagValue("--max-parallel") ?? String(maxParallel);
    throw new CliError(`invalid --max-parallel '${raw}': expected an integer >= 1`, {
      exitCode: 2,
    });
  }
  // A resumed run keeps the earlier run's params and values; given ones win.
  const params = { ...resume?.run.params, ...parseKeyValues(list(argv.param), "--param") };
  const tasks = list(argv.task)
    .flatMap((t) => t.split(","))
    .filter((t) => t !== "");
  const values = argv.values || !resume ? await readValues(argv.values) : resume.run.values;
  const dataDir = await dataDirOf(argv);
  const { loadWorkflowFile, shutdownLuaWorkers } = await import("@sloth/dsl-lua");
  try {
    const { lineLogger, heldLogger } = await import("../logger.js");
    const logger = lineLogger(argv.debug);
    const { stateTargetOf } = await import("../run/state-target.js");
    const { applyDelegateTo, sharesMasterState } = await import("../run/delegation.js");
    const { selectTasks, planRun, validateWorkflow } = await import("@sloth/workflow");
    // The Lua `stack` module: the stack this run deploys (functions say how
    // to run one when there is none).
    // The run's stack lock gets this id, so the module's changes pass it.
    const runLockId = argv.lockId ?? (await import("node:crypto")).randomUUID();
    // The secrets of the run's environment: for `secrets.get`, and masked in
    // everything the run shows and records.
    const { loadRunSecrets, maskingLogger } = await import("../run/secrets.js");
    const secrets = await loadRunSecrets(
      dataDir,
      argv.secretsEnv ?? (process.env.SLOTH_RUNNER_SECRETS_ENV || "default"),
      `run of ${target.file}`,
    );
    for (const notice of secrets.notices) eprintln(`notice: ${notice}`);
    // The load's own output (a file's top level) and hook failures go to the logger.
    const log = maskingLogger(logger, secrets.redact);
    const stackModule = {
      name: "stack",
      url: import.meta.resolve("@sloth/stack/lua"),
      options: {
        path: dataDir.stacksDb,
        ...(target.stack !== undefined ? { stack: target.stack, lockId: runLockId } : {}),
        mask: secrets.values,
      },
    };
    const load = async (shared: boolean, logger: LineLogger) => {
      const loaded = await loadWorkflowFile(target.file, {
        values,
        params,
        dataDir: dataDir.root,
        state: await stateTargetOf(argv, dataDir, shared),
        modules: [stackModule, secrets.module],
        logger,
      });
      let models = resume
        ? [(await import("../run/record.js")).resumeModel(loaded, resume.run, selectTasks)]
        : pickModels(loaded, { workflow: argv.workflow, group: argv.group });
      if (tasks.length > 0) models = selectSubset(models, tasks, selectTasks);
      applyDelegateTo(models, list(argv.delegateTo));
      return { loaded, models };
    };
    // Delegated tasks use their agent's master's state store: so must the
    // local ones, or the run's keys and locks would be split in two. Which
    // store is known once the file is loaded: loaded again with the master's,
    // its top level's output is shown once.
    const held = heldLogger(log);
    let loaded: LoadedWorkflows;
    let models: WorkflowModel[];
    try {
      ({ loaded, models } = await load(false, held));
      if (argv.master === undefined && !argv.dryRun && (await sharesMasterState(argv, models))) {
        held.drop();
        ({ loaded, models } = await load(true, log));
      }
    } finally {
      held.release();
    }
    for (const notice of loaded.notices) eprintln(`notice: ${notice}`);
    const json = argv.output === "json";
    if (argv.dryRun) {
      const plans = models.map((m) =>
        planRun(m, { maxParallel, failFast: argv.failFast, stack: target.stack }),
      );
      const { printPlans } = await import("../run/plan.js");
      printPlans(plans, json);
      if (target.stack !== undefined)
        eprintln(
          await (await import("../run/stack.js")).describeStackPlan(
            dataDir.stacksDb,
            target.stack,
            models,
          ),
        );
      return 0;
    }
    // Check every group before the first one starts.
    for (const model of models) validateWorkflow(model, { stack: target.stack });
    const { executeRuns } = await import("../run/execute.js");
    const { prepareDelegation } = await import("../run/delegation.js");
    const delegation = await prepareDelegation(argv, target.file, models, list(argv.delegateTo), {
      maxBytes: argv.workspaceLimit === undefined ? undefined : parseSize(argv.workspaceLimit),
    });
    const { openRunHistory } = await import("../run/record.js");
    const history = argv.history
      ? await openRunHistory(dataDir.historyDb, {
          file: target.file,
          sources: loaded.sources,
          values,
          params,
          resumedFrom: resume?.run.id,
          stack: target.stack,
          reused: Object.keys(resume?.completed ?? {}),
        })
      : undefined;
    let code: number | undefined;
    let stackRun: import("../run/stack.js").StackRun | undefined;
    try {
      if (target.stack) {
        const { beginStackRun } = await import("../run/stack.js");
        stackRun = await beginStackRun(
          dataDir.stacksDb,
          target.stack,
          target.file,
          models,
          runLockId,
          argv.lockId !== undefined,
        );
      }
      code = await executeRuns(models, {
        history,
        completed: resume?.completed,
        json,
        params,
        values,
        maxParallel,
        failFast: argv.failFast,
        dataDir: dataDir.root,
        logger: log,
        delegateFor: delegation?.delegateFor,
        stack: target.stack,
        onStart: stackRun?.onStart,
        onResult: stackRun?.onResult,
        redact: secrets.redact,
      });
    } finally {
      const after = await stackRun?.finish(
        code === undefined ? "the run failed to start" : code > 128 ? "interrupted" : undefined,
      );
      if (after?.failure) {
        if (json)
          process.stdout.write(
            `${JSON.stringify({ type: "stack", stack: target.stack, status: "failed", message: after.failure })}\n`,
          );
        if (after.signal) code = (await import("../signals.js")).signalExitCode(after.signal);
        else if (code === 0) code = 1;
      }
      history?.close();
      delegation?.close();
    }
    return code;
  } finally {
    await shutdownLuaWorkers();
  }
}

/** Parses a size such as 500MB, 2GB, 10k or a number of bytes. */
function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
  if (!m) {
    throw new CliError(`invalid size '${text}'`, {
      hint: "use a number of bytes or a size such as 500MB or 2GB",
      exitCode: 2,
    });
  }
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[
    m[2]!.toLowerCase() as "" | "k" | "m" | "g" | "t"
  ];
  return Math.round(Number(m[1]) * unit);
}

function list(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

type Select = typeof import("@sloth/workflow").selectTasks;
type Model = Parameters<Select>[0];

/** Keeps, in each model, the named tasks it has (with their dependencies). */
function selectSubset(models: Model[], names: string[], select: Select): Model[] {
  const known = new Set(models.flatMap((m) => m.tasks.map((t) => t.name)));
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0) {
    throw new CliError(`task '${unknown[0]}' not found`, {
      hint: `the tasks are: ${[...known].join(", ")}`,
    });
  }
  return models
    .map((m) => {
      const here = names.filter((n) => m.tasks.some((t) => t.name === n));
      return here.length > 0 ? select(m, here) : undefined;
    })
    .filter((m): m is Model => m !== undefined);
}
