import fs from "node:fs";
import path from "node:path";
import type { LoadedWorkflows } from "@sloth/dsl-lua";
import type { Value, WorkflowModel } from "@sloth/workflow";
import { CliError } from "../context.js";

/** Which workflow file a `run` invocation names, and the stack if one was given. */
export interface RunTarget {
  file: string;
  stack?: string | undefined;
}

/**
 * `run FILE` or `run [stack] -f FILE`: a positional that is an existing file
 * is the file; otherwise it names a stack and `-f` is required.
 */
export function resolveRunTarget(
  positional: string | undefined,
  fileFlag: string | undefined,
): RunTarget {
  if (fileFlag) {
    if (!isFile(fileFlag)) throw missingFile(fileFlag);
    return { file: path.resolve(fileFlag), stack: positional };
  }
  if (positional === undefined) {
    throw new CliError("missing workflow file", {
      hint: "run `sloth-runner run FILE` or `sloth-runner run STACK -f FILE`",
      exitCode: 2,
    });
  }
  if (isFile(positional)) return { file: path.resolve(positional) };
  if (/[/\\]|\.(sloth|lua)$/.test(positional) || fs.existsSync(positional))
    throw missingFile(positional);
  throw new CliError(
    `'${positional}' is not a file, so it names a stack, and no workflow file was given`,
    {
      hint: `run \`sloth-runner run ${positional} -f FILE\``,
      exitCode: 2,
    },
  );
}

/** Checks that a workflow file exists, for the `workflow` commands. */
export function requireFile(file: string): string {
  if (!isFile(file)) throw missingFile(file);
  return path.resolve(file);
}

export function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function missingFile(file: string): CliError {
  let dir = false;
  try {
    dir = fs.statSync(file).isDirectory();
  } catch {
    // Not there at all.
  }
  if (dir)
    return new CliError(`workflow file '${file}' is a directory`, {
      hint: "give the path of a .sloth file in it",
      exitCode: 2,
    });
  return new CliError(`workflow file '${file}' not found`, { hint: "check the path", exitCode: 2 });
}

/**
 * Reads `--values FILE` (repeatable): YAML or JSON, a mapping at the top.
 * Several files are merged in order: a later file's keys win, mappings
 * merge key by key, anything else (lists included) is replaced.
 */
export async function readValues(
  files: string | readonly string[] | undefined,
): Promise<Record<string, Value>> {
  const list = files === undefined ? [] : typeof files === "string" ? [files] : files;
  let merged: Record<string, Value> = {};
  for (const file of list) if (file) merged = mergeValues(merged, await readValuesFile(file));
  return merged;
}

function isMapping(v: unknown): v is Record<string, Value> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function mergeValues(
  base: Record<string, Value>,
  over: Record<string, Value>,
): Record<string, Value> {
  const out: Record<string, Value> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isMapping(b) && isMapping(v) ? mergeValues(b, v) : v;
  }
  return out;
}

async function readValuesFile(file: string): Promise<Record<string, Value>> {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EISDIR"
          ? "it is a directory"
          : code === "EACCES"
            ? "permission denied"
            : (e as Error).message;
    throw new CliError(`cannot read values file '${file}': ${why}`, {
      cause: e,
      hint: "check the path given with --values/-v",
      exitCode: 2,
    });
  }
  const { parse } = await import("yaml");
  let value: unknown;
  try {
    // YAML is a superset of JSON, so one parser reads both.
    value = parse(text);
  } catch (e) {
    const first = ((e as Error).message.split("\n")[0] ?? "").replace(/:\s*$/, "");
    throw new CliError(`cannot parse values file '${file}': ${first}`, { cause: e });
  }
  if (value === null || value === undefined) return {};
  if (!isMapping(value)) {
    throw new CliError(`cannot use values file '${file}': expected a mapping of names to values`);
  }
  return value;
}

/** How to pick workflows from a loaded file. */
export interface Pick {
  workflow?: string | undefined;
  group?: string | undefined;
}

/**
 * The models to run: `-w NAME` picks a `workflow.define`, `-g GROUP` a
 * TaskDefinitions group; without either, a file's only workflow, or all its
 * groups in declaration order.
 */
export function pickModels(loaded: LoadedWorkflows, pick: Pick): WorkflowModel[] {
  const picked = pickNamed(loaded, pick);
  const empty = picked.find((m) => m.tasks.length === 0);
  if (empty) {
    const what = loaded.groups.includes(empty) ? "group" : "workflow";
    throw new CliError(
      `${what} '${empty.name}' in ${path.basename(loaded.file)} has no tasks, so there is nothing to run`,
      {
        hint:
          what === "group"
            ? "give it tasks = { ... }"
            : "list its tasks with :tasks({ ... }), checking that each variable there is defined",
      },
    );
  }
  return picked;
}

function pickNamed(loaded: LoadedWorkflows, pick: Pick): WorkflowModel[] {
  const file = path.basename(loaded.file);
  const names = (models: WorkflowModel[]) => models.map((m) => m.name).join(", ") || "none";
  if (pick.workflow !== undefined) {
    const found = loaded.workflows.find((w) => w.name === pick.workflow);
    if (!found) {
      throw new CliError(`workflow '${pick.workflow}' not found in ${file}`, {
        hint: `its workflows are: ${names(loaded.workflows)}`,
      });
    }
    return [found];
  }
  if (pick.group !== undefined) {
    const found = loaded.groups.find((g) => g.name === pick.group);
    if (!found) {
      throw new CliError(`group '${pick.group}' not found in ${file}`, {
        hint: `its groups are: ${names(loaded.groups)}`,
      });
    }
    return [found];
  }
  const { workflows, groups } = loaded;
  if (workflows.length === 0 && groups.length === 0) {
    throw new CliError(`${file} defines no workflow`, {
      hint: "declare one with workflow.define(...) or a TaskDefinitions table",
    });
  }
  if (workflows.length > 1 || (workflows.length === 1 && groups.length > 0)) {
    const all = [...workflows.map((w) => w.name), ...groups.map((g) => `${g.name} (group)`)];
    throw new CliError(`${file} defines several workflows: ${all.join(", ")}`, {
      hint: "pick one with -w NAME (or -g GROUP)",
    });
  }
  return workflows.length === 1 ? workflows : groups;
}
