import type { Value, WorkflowConfig } from "@sloth/workflow";
import { parseDuration } from "./duration.js";
import { type ConvertScope, invalid, isTable, luaType, plainValue } from "./values.js";

const STACK_FLAGS = {
  require_lock: "requireLock",
  create_snapshot: "createSnapshot",
  validate_before: "validateBefore",
  detect_drift: "detectDrift",
} as const;

/**
 * Converts a workflow's `config` table. Seed 003's stack keys are accepted
 * (the runner decides what to do with them); unknown keys go to `extra`.
 */
export function convertConfig(
  value: unknown,
  owner: string,
  cx: { scope: ConvertScope; notices?: string[] },
  line: number | undefined,
): WorkflowConfig {
  const config: WorkflowConfig = { maxParallelTasks: 4, failFast: false, extra: {} };
  if (value === undefined) return config;
  if (!isTable(value) || Array.isArray(value))
    throw invalid(cx.scope, line, `${owner}: config must be a table`);
  const fail = (reason: string) => invalid(cx.scope, line, `${owner}: config ${reason}`);
  for (const [k, v] of Object.entries(value)) {
    if (k === "timeout") {
      if (typeof v !== "number" && typeof v !== "string")
        throw fail(`timeout must be seconds or a duration, got ${luaType(v)}`);
      try {
        config.timeoutMs = parseDuration(v, "s");
      } catch {
        throw fail(`timeout '${String(v)}' is not a duration`);
      }
    } else if (k === "max_parallel_tasks") {
      if (typeof v !== "number" || !Number.isInteger(v) || v < 1)
        throw fail(`max_parallel_tasks must be a whole number >= 1, got ${String(v)}`);
      config.maxParallelTasks = v;
    } else if (k === "fail_fast") {
      if (typeof v !== "boolean") throw fail(`fail_fast must be a boolean, got ${luaType(v)}`);
      config.failFast = v;
    } else if (k in STACK_FLAGS) {
      if (typeof v !== "boolean") throw fail(`${k} must be a boolean, got ${luaType(v)}`);
      config[STACK_FLAGS[k as keyof typeof STACK_FLAGS]] = v;
    } else if (k === "on_failure") {
      if (v !== "rollback") throw fail(`on_failure must be "rollback", got ${JSON.stringify(v)}`);
      config.onFailure = "rollback";
    } else {
      const near = KNOWN.find((known) => similar(k, known));
      if (near)
        cx.notices?.push(
          `${cx.scope.file}${line ? `:${line}` : ""}: ${owner}: config key '${k}' is not one the runner reads; did you mean '${near}'? (kept in config.extra)`,
        );
      try {
        config.extra[k] = plainValue(v, k) as Value;
      } catch (e) {
        throw fail((e as Error).message);
      }
    }
  }
  return config;
}

const KNOWN = [
  "timeout",
  "max_parallel_tasks",
  "fail_fast",
  "on_failure",
  ...Object.keys(STACK_FLAGS),
];

/** A likely misspelling: one contains the other, or they are a couple of edits apart. */
function similar(a: string, b: string): boolean {
  const x = a.toLowerCase().replace(/[-_ ]/g, "");
  const y = b.toLowerCase().replace(/[-_ ]/g, "");
  if (x === y) return true;
  if (x.length >= 4 && (y.startsWith(x) || x.startsWith(y))) return true;
  return editDistance(x, y) <= 2;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(
        (prev[j] as number) + 1,
        (cur[j - 1] as number) + 1,
        (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    prev = cur;
  }
  return prev[b.length] as number;
}
