import type { Condition, Delegation, RetryBackoff, TaskModel, Value } from "@sloth/workflow";
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
  inherited: { workdir?: string | undefined; delegateTo?: Delegation | undefined };
}

/** Converts one encoded task table (table form or builder data) into a TaskModel. */
export function convertTask(raw: Record<string, unknown>, site: TaskSite): TaskModel {
  const line = typeof raw.__line === "number" && raw.__line > 0 ? raw.__line : site.line;
  const fields: Record<string, unknown> = {};
  const label = () => (typeof fields.name === "string" ? `task '${fields.name}'` : "task");
  for (const [k, v] of Object.entries(raw)) {
    if (k.startsWith("__")) continue;
    const canonical = ALIASES[k] ?? k;
    if (!TASK_FIELDS.includes(canonical)) {
      const named =
        typeof raw.name === "string"
          ? `task '${raw.name}'`
          : site.key
            ? `task '${site.key}'`
            : "task";
      throw invalid(
        site.scope,
        line,
        `${named}: unknown field '${k}'; valid fields: ${TASK_FIELDS.join(", ")} (aliases: ${Object.keys(ALIASES).join(", ")})`,
      );
    }
    if (canonical in fields)
      throw invalid(site.scope, line, `${label()}: '${k}' and '${canonical}' both set; use one`);
    fields[canonical] = v;
  }
  if (site.key !== undefined) {
    if (fields.name !== undefined && fields.name !== site.key) {
      throw invalid(
        site.scope,
        line,
        `task '${site.key}': its name field says '${String(fields.name)}'; drop one`,
      );
    }
    fields.name = site.key;
  }
  const fail = (reason: string) => invalid(site.scope, line, `${label()}: ${reason}`);
  const name = fields.name;
  if (typeof name !== "string" || name === "")
    throw fail(`needs a name (a non-empty string), got ${luaType(name)}`);
  const str = (field: string): string | undefined => {
    const v = fields[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") throw fail(`${field} must be a string, got ${luaType(v)}`);
    return v;
  };
  const strings = (field: string): string[] => {
    const v = fields[field];
    if (v === undefined) return [];
    const list = listOf(v, true);
    if (!list || list.some((x) => typeof x !== "string"))
      throw fail(`${field} must be a name or a list of names`);
    return list as string[];
  };
  const duration = (field: string): number | undefined => {
    const v = fields[field];
    if (v === undefined) return undefined;
    if (typeof v !== "number" && typeof v !== "string")
      throw fail(`${field} must be seconds or a duration such as "30s", got ${luaType(v)}`);
    try {
      return parseDuration(v, "s");
    } catch {
      throw fail(
        `${field} '${String(v)}' is not a duration; use seconds or "500ms", "30s", "5m", "1h30m"`,
      );
    }
  };
  const condition = (field: string): Condition | undefined => {
    const v = fields[field];
    if (v === undefined) return undefined;
    if (typeof v === "string") return { kind: "shell", script: v };
    if (typeof v === "boolean") return { kind: "shell", script: v ? "true" : "false" };
    if (isFnRef(v)) return { kind: "function", fn: bindCondition(v, site.caller) };
    throw fail(`${field} must be a function, a shell command or a boolean, got ${luaType(v)}`);
  };

  const task: TaskModel = {
    name,
    description: str("description"),
    group: site.group,
    dependsOn: strings("depends_on"),
    retries: 0,
    retryBackoff: "exponential",
    params: {},
    tags: strings("tags"),
    hooks: {},
    artifacts: strings("artifacts"),
    consumes: strings("consumes"),
    source: line !== undefined ? { file: site.scope.file, line } : undefined,
  };
  const command = fields.command;
  if (typeof command === "string") task.command = { kind: "shell", script: command };
  else if (isFnRef(command))
    task.command = { kind: "function", fn: bindCommand(command, site.caller) };
  else if (command !== undefined)
    throw fail(`command must be a function or a shell string, got ${luaType(command)}`);

  const retries = fields.retries;
  if (retries !== undefined) {
    if (typeof retries !== "number" || !Number.isInteger(retries) || retries < 0)
      throw fail(`retries must be a whole number >= 0, got ${String(retries)}`);
    task.retries = retries;
  }
  const strategy = fields.retry_strategy;
  if (strategy !== undefined && strategy !== null) {
    if (strategy !== "exponential" && strategy !== "fixed")
      throw fail(
        `retry strategy must be "exponential" or "fixed", got ${JSON.stringify(strategy)}`,
      );
    task.retryBackoff = strategy as RetryBackoff;
  }
  task.retryDelayMs = duration("retry_delay");
  task.timeoutMs = duration("timeout");
  if (fields.delegate_to !== undefined) {
    try {
      task.delegateTo = parseDelegateTo(fields.delegate_to);
    } catch (e) {
      throw fail((e as Error).message);
    }
  } else task.delegateTo = site.inherited.delegateTo;
  task.workdir = str("workdir") ?? site.inherited.workdir;
  if (fields.params !== undefined) {
    const p = fields.params;
    if (!isTable(p) || (Array.isArray(p) && p.length > 0))
      throw fail(`params must be a table of name = value, got ${luaType(p)}`);
    try {
      task.params = Array.isArray(p) ? {} : (plainValue(p, "params") as Record<string, Value>);
    } catch (e) {
      throw fail((e as Error).message);
    }
  }
  task.runIf = condition("run_if");
  task.abortIf = condition("abort_if");
  for (const [field, slot] of Object.entries(HOOKS)) {
    const v = fields[field];
    if (v === undefined) continue;
    if (!isFnRef(v)) throw fail(`${field} must be a function, got ${luaType(v)}`);
    task.hooks[slot] = bindHook(v, site.caller);
  }
  return task;
}
