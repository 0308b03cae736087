import type { Delegation, TaskModel, WorkflowModel } from "@sloth/workflow";
import { bindWorkflowHook, type LuaCaller } from "./bind.js";
import { convertConfig } from "./config.js";
import { parseDelegateTo } from "./delegate.js";
import type { SourceIndex } from "./source-index.js";
import { convertTask, parseWorkspace } from "./task.js";
import { type ConvertScope, invalid, isFnRef, isTable, luaType } from "./values.js";

const GROUP_FIELDS = [
  "description",
  "version",
  "workdir",
  "delegate_to",
  "workspace",
  "tasks",
  "config",
];
const WORKFLOW_FIELDS = [
  "description",
  "version",
  "tasks",
  "config",
  "on_start",
  "on_task_start",
  "on_task_complete",
  "on_complete",
];

/** What the Lua extraction produced. */
export interface RawFile {
  defs: unknown;
  workflows: Array<Record<string, unknown>>;
  /** Files the top level read with require, dofile or loadfile. */
  files?: string[];
  /** The tasks the top level created with task(), as [name, line]. */
  created?: Array<[string, number]>;
}

/** Context of one conversion. */
export interface ConvertContext {
  scope: ConvertScope;
  index: SourceIndex;
  caller: LuaCaller;
  file: string;
  baseDir: string;
  /** One-line notices for the user (a config key that looks misspelled). */
  notices?: string[];
}

/** Converts the extraction into models: `workflow.define`s and `TaskDefinitions` groups. */
export function convertFile(
  raw: RawFile,
  cx: ConvertContext,
): { workflows: WorkflowModel[]; groups: WorkflowModel[] } {
  const groups: WorkflowModel[] = [];
  if (raw.defs !== null && raw.defs !== undefined) {
    if (!isTable(raw.defs) || Array.isArray(raw.defs))
      throw invalid(cx.scope, undefined, "TaskDefinitions must be a table of groups");
    const names = Object.keys(raw.defs).sort(
      (a, b) =>
        (cx.index.group(a)?.offset ?? Infinity) - (cx.index.group(b)?.offset ?? Infinity) ||
        a.localeCompare(b),
    );
    for (const name of names)
      groups.push(convertGroup(name, (raw.defs as Record<string, unknown>)[name], cx));
  }
  const workflows: WorkflowModel[] = [];
  const seen = new Map<string, number>();
  for (const data of raw.workflows) {
    const wf = convertWorkflow(data, cx);
    const line = Number(data.__line);
    const before = seen.get(wf.name);
    if (before !== undefined)
      throw invalid(cx.scope, line, `workflow '${wf.name}' is already defined at line ${before}`);
    seen.set(wf.name, line);
    workflows.push(wf);
  }
  // A task nobody lists never runs: most likely left out of :tasks({ ... }),
  // or listed under a misspelt variable at the end of the list.
  const used = new Set(workflows.flatMap((w) => w.tasks.map((t) => t.name)));
  const told = new Set<string>();
  for (const [name, line] of raw.created ?? []) {
    if (used.has(name) || told.has(name) || workflows.length === 0) continue;
    told.add(name);
    cx.notices?.push(
      `${cx.scope.file}:${line}: task '${name}' is defined but no workflow lists it in :tasks({ ... }), so it never runs`,
    );
  }
  return { workflows, groups };
}

function convertGroup(name: string, value: unknown, cx: ConvertContext): WorkflowModel {
  const line = cx.index.group(name)?.line;
  if (!isTable(value) || Array.isArray(value))
    throw invalid(
      cx.scope,
      line,
      `group '${name}' must be a table with description and tasks, got ${luaType(value)}`,
    );
  const g = value as Record<string, unknown>;
  for (const k of Object.keys(g)) {
    if (!GROUP_FIELDS.includes(k))
      throw invalid(
        cx.scope,
        line,
        `group '${name}': unknown field '${k}'; valid fields: ${GROUP_FIELDS.join(", ")}`,
      );
  }
  let delegateTo: Delegation | undefined;
  if (g.delegate_to !== undefined) {
    try {
      delegateTo = parseDelegateTo(g.delegate_to);
    } catch (e) {
      throw invalid(cx.scope, line, `group '${name}': ${(e as Error).message}`);
    }
  }
  let workspace: { exclude: string[] } | undefined;
  try {
    workspace = parseWorkspace(g.workspace);
  } catch (e) {
    throw invalid(cx.scope, line, `group '${name}': ${(e as Error).message}`);
  }
  if (g.workdir !== undefined && typeof g.workdir !== "string")
    throw invalid(cx.scope, line, `group '${name}': workdir must be a string`);
  return {
    name,
    description: text(g.description, `group '${name}': description`, cx, line),
    version: g.version === undefined ? undefined : String(g.version),
    file: cx.file,
    baseDir: cx.baseDir,
    config: convertConfig(g.config, `group '${name}'`, cx, line),
    tasks: convertTasks(
      g.tasks,
      {
        owner: `group '${name}'`,
        group: name,
        line,
        inherited: { workdir: g.workdir as string | undefined, delegateTo, workspace },
      },
      cx,
    ),
    hooks: {},
  };
}

function convertWorkflow(data: Record<string, unknown>, cx: ConvertContext): WorkflowModel {
  const name = String(data.name);
  const line = Number(data.__line) || undefined;
  const fields: Record<string, unknown> = {};
  const spec = data.__spec;
  if (spec !== undefined && spec !== null) {
    if (!isTable(spec) || Array.isArray(spec))
      throw invalid(cx.scope, line, `workflow '${name}': its definition must be a table`);
    for (const [k, v] of Object.entries(spec)) {
      if (!WORKFLOW_FIELDS.includes(k))
        throw invalid(
          cx.scope,
          line,
          `workflow '${name}': unknown field '${k}'; valid fields: ${WORKFLOW_FIELDS.join(", ")}`,
        );
      fields[k] = v;
    }
  }
  for (const [k, v] of Object.entries(data)) if (!k.startsWith("__") && k !== "name") fields[k] = v;
  const hook = (field: string) => {
    const v = fields[field];
    if (v === undefined) return undefined;
    if (!isFnRef(v))
      throw invalid(
        cx.scope,
        line,
        `workflow '${name}': ${field} must be a function, got ${luaType(v)}`,
      );
    return bindWorkflowHook(v, cx.caller);
  };
  const onStart = hook("on_start");
  const onTaskStart = hook("on_task_start");
  const onTaskComplete = hook("on_task_complete");
  const onComplete = hook("on_complete");
  return {
    name,
    description: text(fields.description, `workflow '${name}': description`, cx, line),
    version: fields.version === undefined ? undefined : String(fields.version),
    file: cx.file,
    baseDir: cx.baseDir,
    config: convertConfig(fields.config, `workflow '${name}'`, cx, line),
    tasks: convertTasks(fields.tasks, { owner: `workflow '${name}'`, line, inherited: {} }, cx),
    hooks: {
      onStart: onStart && ((log) => onStart([], log)),
      onTaskStart: onTaskStart && ((t, log) => onTaskStart([t], log)),
      onTaskComplete:
        onTaskComplete && ((t, ok, out, log) => onTaskComplete([t, ok, out ?? {}], log)),
      onComplete: onComplete && ((ok, results, log) => onComplete([ok, results], log)),
    },
  };
}

interface Owner {
  owner: string;
  group?: string;
  line: number | undefined;
  inherited: {
    workdir?: string | undefined;
    delegateTo?: Delegation | undefined;
    workspace?: { exclude: string[] } | undefined;
  };
}

function convertTasks(value: unknown, o: Owner, cx: ConvertContext): TaskModel[] {
  if (value === undefined) return [];
  if (typeof value === "object" && value !== null && ("$task" in value || "$parallel" in value))
    throw invalid(
      cx.scope,
      o.line,
      `${o.owner}: tasks must be a list of tasks, got a single ${"$task" in value ? "task" : "parallel() group"}; wrap it in braces: :tasks({ t })`,
    );
  if (!isTable(value))
    throw invalid(cx.scope, o.line, `${o.owner}: tasks must be a table, got ${luaType(value)}`);
  // Positional entries keep their order; keyed ones follow in source order.
  const entries: Array<{ key?: string; value: unknown }> = [];
  const keyed: string[] = [];
  // A variable that is nil (misspelt, or defined below) leaves a hole in the list.
  const hole = (position: number) =>
    invalid(
      cx.scope,
      o.line,
      `${o.owner}: entry ${position} of its tasks is nil (an undefined variable? check the spelling of each task in the list)`,
    );
  if (Array.isArray(value))
    value.forEach((v, i) => {
      if (v === null || v === undefined) throw hole(i + 1);
      entries.push({ value: v });
    });
  else {
    const obj = value as Record<string, unknown>;
    const positions = Object.keys(obj)
      .filter((k) => /^\d+$/.test(k))
      .sort((a, b) => Number(a) - Number(b));
    positions.forEach((k, i) => {
      if (Number(k) !== i + 1) throw hole(i + 1);
      entries.push({ value: obj[k] });
    });
    keyed.push(...Object.keys(obj).filter((k) => !/^\d+$/.test(k)));
    const pos = (k: string) => cx.index.keyedTask(k, o.group, o.line ?? 0)?.offset ?? Infinity;
    keyed.sort((a, b) => pos(a) - pos(b) || a.localeCompare(b));
    for (const k of keyed) entries.push({ key: k, value: obj[k] });
  }
  const tasks: TaskModel[] = [];
  const lines = new Map<string, number | undefined>();
  const add = (entry: { key?: string; value: unknown }, parallelGroup?: Set<string>) => {
    const v = entry.value;
    if (isTable(v) && !Array.isArray(v)) {
      const data = v as Record<string, unknown>;
      const name = entry.key ?? (typeof data.name === "string" ? data.name : undefined);
      const line =
        entry.key !== undefined
          ? cx.index.keyedTask(entry.key, o.group, o.line ?? 0)?.line
          : name !== undefined
            ? cx.index.nameLine(name, o.line ?? 0)
            : undefined;
      push(
        convertTask(data, {
          scope: cx.scope,
          caller: cx.caller,
          notices: cx.notices,
          line: line ?? o.line,
          group: o.group,
          key: entry.key,
          inherited: o.inherited,
        }),
        parallelGroup,
      );
    } else if (typeof v === "object" && v !== null && "$task" in v) {
      const data = (v as { $task: Record<string, unknown> }).$task;
      push(
        convertTask(data, {
          scope: cx.scope,
          caller: cx.caller,
          notices: cx.notices,
          line: o.line,
          group: o.group,
          inherited: o.inherited,
        }),
        parallelGroup,
      );
    } else if (typeof v === "object" && v !== null && "$parallel" in v) {
      const p = (v as { $parallel: { tasks: unknown; __line?: number } }).$parallel;
      const members = new Set<string>();
      const list = Array.isArray(p.tasks)
        ? p.tasks
        : isTable(p.tasks) && Object.keys(p.tasks).length === 0
          ? []
          : undefined;
      if (!list) throw invalid(cx.scope, p.__line, "parallel() expects a list of tasks");
      for (const item of list) add({ value: item }, members);
      for (const t of tasks.filter((t) => members.has(t.name))) {
        const inner = t.dependsOn.find((d) => members.has(d));
        if (inner)
          throw invalid(
            cx.scope,
            p.__line,
            `task '${t.name}' depends on '${inner}' inside the same parallel() group`,
          );
      }
    } else {
      throw invalid(
        cx.scope,
        o.line,
        `${o.owner}: tasks entries must be task tables or task objects, got ${luaType(v)}${entry.key ? ` for '${entry.key}'` : ""}`,
      );
    }
  };
  const push = (t: TaskModel, parallelGroup?: Set<string>) => {
    if (lines.has(t.name)) {
      const at = lines.get(t.name);
      throw invalid(
        cx.scope,
        t.source?.line,
        `${o.owner}: task '${t.name}' is declared twice${at ? ` (first at line ${at})` : ""}`,
      );
    }
    lines.set(t.name, t.source?.line);
    parallelGroup?.add(t.name);
    tasks.push(t);
  };
  for (const e of entries) add(e);
  return tasks;
}

function text(
  v: unknown,
  what: string,
  cx: ConvertContext,
  line: number | undefined,
): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string")
    throw invalid(cx.scope, line, `${what} must be a string, got ${luaType(v)}`);
  return v;
}
