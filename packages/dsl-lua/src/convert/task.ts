import type {
  Condition,
  Delegation,
  RetryBackoff,
  TaskCommand,
  TaskModel,
  Value,
} from "@sloth/workflow";
import { bindCommand, bindCondition, bindHook, type LuaCaller } from "./bind.js";
import { parseDelegateTo } from "./delegate.js";
import { parseDuration } from "./duration.js";
import {
  type ConvertScope,
  invalid,
  isFnRef,
  isTable,
  listOf,
  luaType,
  plainValue,
} from "./values.js";

/** Task fields of the table form (the fluent methods set the same ones). */
export const TASK_FIELDS = [
  "name",
  "description",
  "command",
  "depends_on",
  "retries",
  "retry_strategy",
  "retry_delay",
  "timeout",
  "delegate_to",
  "workdir",
  "params",
  "tags",
  "run_if",
  "abort_if",
  "pre_hook",
  "post_hook",
  "on_success",
  "on_failure",
  "on_timeout",
  "artifacts",
  "consumes",
  "workspace",
];
const ALIASES: Record<string, string> = {
  pre_exec: "pre_hook",
  post_exec: "post_hook",
  on_fail: "on_failure",
};
const HOOKS = {
  pre_hook: "pre",
  post_hook: "post",
  on_success: "onSuccess",
  on_failure: "onFailure",
  on_timeout: "onTimeout",
} as const;

/** What a task inherits and where it sits. */
export interface TaskSite {
  scope: ConvertScope;
  caller: LuaCaller;
  line: number | undefined;
  group?: string | undefined;
  /** The key of a keyed task: its name. */
  key?: string | undefined;
  /** One-line notices for the user. */
  notices?: string[] | undefined;
  inherited: {
    workdir?: string | undefined;
    delegateTo?: Delegation | undefined;
    workspace?: { exclude: string[] } | undefined;
  };
}

/**
 * Parses `workspace = { exclude = {...} }` (a task's or a group's); throws
 * an Error whose message names the problem.
 */
export function parseWorkspace(v: unknown): { exclude: string[] } | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v)) {
    throw new Error(
      `workspace must be a table such as { exclude = { "node_modules/" } }, got ${luaType(v)}`,
    );
  }
  const w = v as Record<string, unknown>;
  for (const k of Object.keys(w)) {
    if (!k.startsWith("__") && k !== "exclude")
      throw new Error(`unknown workspace field '${k}'; valid fields: exclude`);
  }
  if (w.exclude === undefined) return { exclude: [] };
  const list = listOf(w.exclude, true);
  if (!list || list.some((x) => typeof x !== "string")) {
    throw new Error("workspace.exclude must be a pattern or a list of patterns (gitignore syntax)");
  }
  return { exclude: list as string[] };
}

/** Converts one encoded task table (table form or builder data) into a TaskModel. */
export function convertTask(raw: Record<string, unknown>, site: TaskSite): TaskModel {
  const line = typeof raw.__line === "number" && raw.__line > 0 ? raw.__line : site.line;
  const f = new TaskFields(canonicalFields(raw, site, line), site, line);
  const task: TaskModel = {
    name: f.name,
    description: f.str("description"),
    group: site.group,
    command: f.command(),
    dependsOn: f.strings("depends_on"),
    retries: f.retries(),
    retryBackoff: f.backoff(),
    retryDelayMs: f.duration("retry_delay"),
    timeoutMs: f.duration("timeout"),
    delegateTo: f.delegateTo() ?? site.inherited.delegateTo,
    workdir: f.str("workdir") ?? site.inherited.workdir,
    params: f.params(),
    tags: f.strings("tags"),
    runIf: f.condition("run_if"),
    abortIf: f.condition("abort_if"),
    hooks: f.hooks(),
    artifacts: f.strings("artifacts"),
    consumes: f.strings("consumes"),
    workspace: f.workspace() ?? site.inherited.workspace,
    source: line !== undefined ? { file: site.scope.file, line } : undefined,
  };
  if (task.command === undefined && task.delegateTo === undefined)
    site.notices?.push(
      `${site.scope.file}${line !== undefined ? `:${line}` : ""}: task '${task.name}' has no command: it succeeds without doing anything`,
    );
  return task;
}

// Resolves aliases, rejects unknown fields and names a keyed task by its key.
function canonicalFields(
  raw: Record<string, unknown>,
  site: TaskSite,
  line: number | undefined,
): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  const who =
    typeof raw.name === "string" ? `task '${raw.name}'` : site.key ? `task '${site.key}'` : "task";
  for (const [k, v] of Object.entries(raw)) {
    if (k.startsWith("__")) continue;
    const canonical = ALIASES[k] ?? k;
    if (!TASK_FIELDS.includes(canonical)) {
      const valid = `${TASK_FIELDS.join(", ")} (aliases: ${Object.keys(ALIASES).join(", ")})`;
      throw invalid(site.scope, line, `${who}: unknown field '${k}'; valid fields: ${valid}`);
    }
    if (canonical in fields) {
      throw invalid(site.scope, line, `${who}: '${k}' and '${canonical}' both set; use one`);
    }
    fields[canonical] = v;
  }
  if (site.key !== undefined) {
    if (fields.name !== undefined && fields.name !== site.key) {
      const says = String(fields.name);
      throw invalid(
        site.scope,
        line,
        `task '${site.key}': its name field says '${says}'; drop one`,
      );
    }
    fields.name = site.key;
  }
  return fields;
}

/** Reads one task's fields, each failing with the task's name and line. */
class TaskFields {
  readonly name: string;

  constructor(
    private readonly fields: Record<string, unknown>,
    private readonly site: TaskSite,
    private readonly line: number | undefined,
  ) {
    const name = fields.name;
    if (typeof name !== "string" || name === "") {
      throw this.fail(`needs a name (a non-empty string), got ${luaType(name)}`);
    }
    this.name = name;
  }

  fail(reason: string): Error {
    const who = typeof this.fields.name === "string" ? `task '${this.fields.name}'` : "task";
    return invalid(this.site.scope, this.line, `${who}: ${reason}`);
  }

  str(field: string): string | undefined {
    const v = this.fields[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") throw this.fail(`${field} must be a string, got ${luaType(v)}`);
    return v;
  }

  /** `workspace = { exclude = { "node_modules/", "*.log" } }`: what delegation ships. */
  workspace(): { exclude: string[] } | undefined {
    try {
      return parseWorkspace(this.fields.workspace);
    } catch (e) {
      throw this.fail((e as Error).message);
    }
  }

  strings(field: string): string[] {
    const v = this.fields[field];
    if (v === undefined) return [];
    const list = listOf(v, true);
    if (!list || list.some((x) => typeof x !== "string")) {
      throw this.fail(`${field} must be a name or a list of names`);
    }
    return list as string[];
  }

  duration(field: string): number | undefined {
    const v = this.fields[field];
    if (v === undefined) return undefined;
    if (typeof v !== "number" && typeof v !== "string") {
      throw this.fail(`${field} must be seconds or a duration such as "30s", got ${luaType(v)}`);
    }
    try {
      return parseDuration(v, "s");
    } catch {
      const forms = 'use seconds or "500ms", "30s", "5m", "1h30m"';
      throw this.fail(`${field} '${String(v)}' is not a duration; ${forms}`);
    }
  }

  condition(field: string): Condition | undefined {
    const v = this.fields[field];
    if (v === undefined) return undefined;
    if (typeof v === "string") return { kind: "shell", script: v };
    if (typeof v === "boolean") return { kind: "shell", script: v ? "true" : "false" };
    if (isFnRef(v)) return { kind: "function", fn: bindCondition(v, this.site.caller) };
    throw this.fail(`${field} must be a function, a shell command or a boolean, got ${luaType(v)}`);
  }

  command(): TaskCommand | undefined {
    const v = this.fields.command;
    if (v === undefined) return undefined;
    if (typeof v === "string") return { kind: "shell", script: v };
    if (isFnRef(v)) return { kind: "function", fn: bindCommand(v, this.site.caller) };
    throw this.fail(`command must be a function or a shell string, got ${luaType(v)}`);
  }

  retries(): number {
    const v = this.fields.retries;
    if (v === undefined) return 0;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw this.fail(`retries must be a whole number >= 0, got ${String(v)}`);
    }
    return v;
  }

  backoff(): RetryBackoff {
    const v = this.fields.retry_strategy;
    if (v === undefined || v === null) return "exponential";
    if (v !== "exponential" && v !== "fixed") {
      throw this.fail(`retry strategy must be "exponential" or "fixed", got ${JSON.stringify(v)}`);
    }
    return v;
  }

  delegateTo(): Delegation | undefined {
    const v = this.fields.delegate_to;
    if (v === undefined) return undefined;
    try {
      return parseDelegateTo(v);
    } catch (e) {
      throw this.fail((e as Error).message);
    }
  }

  params(): Record<string, Value> {
    const v = this.fields.params;
    if (v === undefined) return {};
    // An empty Lua table arrives as an empty list.
    if (Array.isArray(v) && v.length === 0) return {};
    if (!isTable(v) || Array.isArray(v)) {
      throw this.fail(`params must be a table of name = value, got ${luaType(v)}`);
    }
    try {
      return plainValue(v, "params") as Record<string, Value>;
    } catch (e) {
      throw this.fail((e as Error).message);
    }
  }

  hooks(): TaskModel["hooks"] {
    const hooks: TaskModel["hooks"] = {};
    for (const [field, slot] of Object.entries(HOOKS)) {
      const v = this.fields[field];
      if (v === undefined) continue;
      if (!isFnRef(v)) throw this.fail(`${field} must be a function, got ${luaType(v)}`);
      hooks[slot] = bindHook(v, this.site.caller);
    }
    return hooks;
  }
}
