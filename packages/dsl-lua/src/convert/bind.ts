import type {
  TaskContext,
  TaskFunction,
  TaskHook,
  TaskLog,
  TaskOutcome,
  TaskOutput,
  Value,
} from "@sloth/workflow";
import { DslError, formatLocated } from "../errors.js";
import type { CallResult } from "../protocol.js";
import { type FnRef, isTable, luaType } from "./values.js";

/** Calls an encoded Lua function in a worker. */
export interface LuaCaller {
  call(
    ref: FnRef,
    args: Value[],
    opts: {
      signal?: AbortSignal | undefined;
      log?: TaskLog | undefined;
      /** For the SLOTH_RUN_ID and SLOTH_TASK variables of `exec.run` commands. */
      runId?: string | undefined;
      taskName?: string | undefined;
      /** More variables for the `exec.run` commands of the call. */
      env?: Readonly<Record<string, string>> | undefined;
      /** Fail the call (SLOTH_LUA_WORKER) after this long. */
      timeoutMs?: number | undefined;
      workdir?: string | undefined;
    },
  ): Promise<CallResult>;
}

/** The message of a failed Lua call: "file:line: reason" and the offending line. */
export function callFailure(r: Extract<CallResult, { ok: false }>): string {
  return formatLocated(withModuleHint(r.reason), r.location);
}

// Modules of the original Go tool's documents that this runner does not
// have: a script written for them fails on a nil global, which says little.
const ORIGINAL_MODULES =
  /\(global '(facts|file_ops|git|docker|pkg|systemd|infra_test|metrics|net|ai|gitops|go_bridge|salt|terraform|pulumi|aws|gcp|azure|kubernetes)'\)/;

/** A failure that comes from using a module of the original tool, with what to do instead. */
export function withModuleHint(reason: string): string {
  const m = /attempt to (?:index|call) a nil value/.test(reason)
    ? ORIGINAL_MODULES.exec(reason)
    : /module '([a-z_]+)' not found/.exec(reason);
  const name =
    m?.[1] !== undefined && ORIGINAL_MODULES.test(`(global '${m[1]}')`) ? m[1] : undefined;
  if (name === undefined) return reason;
  return `${reason}: ${missingModuleHint(name)}`;
}

// What to use instead of a module of the original tool, where there is a
// clear answer; otherwise the command-line tool that does the same job.
const INSTEAD: Record<string, string> = {
  net: 'use the http module for requests, or exec.run("curl ...")',
  file_ops: 'use the fs module (fs.read, fs.write, fs.copy, ...), or exec.run("cp ...")',
  systemd: 'run exec.run("systemctl ...")',
  pkg: 'run the package manager with exec.run("apt-get ...") (or dnf, apk, ...)',
  facts:
    'read what you need with exec.run("uname -a"), exec.run("hostname"), fs.read("/etc/os-release"), ...',
  metrics:
    'read what you need with exec.run("df -h"), exec.run("uptime"), ..., or `sloth-runner agent metrics NAME`',
  infra_test:
    'check with exec.run (test -f, systemctl is-active, curl -f, ...) and fail the task with return false, "why"',
  gitops: 'run exec.run("git ...") and your deploy tool',
  ai: "call your provider's API with the http module",
  go_bridge: "run the program with exec.run",
};

/** How to do without a module of the original tool's documents. */
export function missingModuleHint(name: string): string {
  const instead =
    INSTEAD[name] ??
    `run the tool from a command instead, e.g. exec.run("${name.replace("_", "-")} ...")`;
  return `there is no '${name}' module here; ${instead} (the modules are listed in the @sloth/dsl-lua README)`;
}

// What a Lua function receives as `params`: the task's params plus the basics.
function paramsOf(ctx: TaskContext): Record<string, Value> {
  return { task_name: ctx.taskName, workdir: ctx.workdir, ...ctx.params };
}

/**
 * A command function: called as `fn(params, deps)`, returning
 * `ok, message, output`. No value means success; a non-boolean first value
 * fails without retry; `nil, "message"` fails with the message.
 */
export function bindCommand(ref: FnRef, caller: LuaCaller): TaskFunction {
  return async (ctx) => {
    let r: CallResult;
    try {
      r = await caller.call(ref, [paramsOf(ctx), ctx.deps], ctx);
    } catch (e) {
      return { ok: false, message: (e as Error).message };
    }
    return outcomeOf(r);
  };
}

/** Interprets a command's return values (exported for tests). */
export function outcomeOf(r: CallResult): TaskOutcome {
  if (!r.ok) return { ok: false, message: callFailure(r) };
  if (r.count === 0) return { ok: true };
  const [first, message, output] = r.values;
  const text =
    message === null || message === undefined
      ? undefined
      : typeof message === "string"
        ? message
        : JSON.stringify(message);
  if (first === null) {
    return text === undefined ? { ok: true } : { ok: false, message: text };
  }
  if (typeof first !== "boolean") {
    return {
      ok: false,
      message: `command returned ${luaType(first)}, expected boolean`,
      retryable: false,
    };
  }
  let out: TaskOutput | undefined;
  if (output !== null && output !== undefined) {
    if (!isTable(output) || Array.isArray(output)) {
      if (Array.isArray(output) && output.length === 0) out = {};
      else {
        return {
          ok: false,
          message: `command returned ${Array.isArray(output) ? "a list" : luaType(output)} as its output, expected a table with named fields`,
          retryable: false,
        };
      }
    } else out = output as TaskOutput;
  }
  return { ok: first, message: text, output: out };
}

/** A run_if/abort_if function: `fn(params, deps)`, truthy means true. */
export function bindCondition(
  ref: FnRef,
  caller: LuaCaller,
): (ctx: TaskContext) => Promise<boolean> {
  return async (ctx) => {
    const r = await caller.call(ref, [paramsOf(ctx), ctx.deps], ctx);
    if (!r.ok) throw new DslError("SLOTH_LUA_RUNTIME", callFailure(r), { location: r.location });
    const v = r.values[0];
    return v !== null && v !== undefined && v !== false;
  };
}

/**
 * A task hook: `fn(params, deps)` before the task, `fn(params, deps, result)`
 * after it, where result is `{ success, message, output }`.
 */
export function bindHook(ref: FnRef, caller: LuaCaller): TaskHook {
  return async (ctx, outcome) => {
    const args: Value[] = [paramsOf(ctx), ctx.deps];
    if (outcome) {
      const result: Record<string, Value> = { success: outcome.ok };
      if (outcome.message !== undefined) result.message = outcome.message;
      if (outcome.output !== undefined) result.output = outcome.output;
      args.push(result);
    }
    const r = await caller.call(ref, args, ctx);
    if (!r.ok) throw new DslError("SLOTH_LUA_RUNTIME", callFailure(r), { location: r.location });
    refused(r.values);
  };
}

/**
 * A hook says no as a command does, with `return false, "why"` (raising an
 * error works too); nil or anything else lets things go on.
 */
function refused(values: Value[]): void {
  if (values[0] !== false) return;
  const why = values[1];
  throw new DslError(
    "SLOTH_LUA_RUNTIME",
    typeof why === "string" && why !== "" ? why : "the hook returned false",
  );
}

/** How long a workflow hook may run: they have no timeout or signal of their own. */
export const WORKFLOW_HOOK_TIMEOUT_MS = 300_000;

/** A workflow hook: called with `args`, output to the load's logger. */
export function bindWorkflowHook(
  ref: FnRef,
  caller: LuaCaller,
): (args: Value[], log?: TaskLog) => Promise<void> {
  return async (args, log) => {
    const r = await caller.call(ref, args, {
      timeoutMs: WORKFLOW_HOOK_TIMEOUT_MS,
      ...(log ? { log } : {}),
    });
    if (!r.ok) throw new DslError("SLOTH_LUA_RUNTIME", callFailure(r), { location: r.location });
    refused(r.values);
  };
}
