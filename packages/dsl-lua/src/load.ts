import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { findCycle, type Value, type WorkflowModel } from "@sloth/workflow";
import { type LuaCaller, withModuleHint } from "./convert/bind.js";
import { SourceIndex } from "./convert/source-index.js";
import type { FnRef } from "./convert/values.js";
import { convertFile, type RawFile } from "./convert/workflow.js";
import { DslError, formatLocated, isSlothError, type SourceLocation } from "./errors.js";
import { JobAborted, prewarm, type RunJobOptions, runJob } from "./pool.js";
import type { CallResult, JobError, SessionSpec } from "./protocol.js";
import type { LoadedWorkflows, LoadOptions, LuaModuleSpec, ValidationResult } from "./types.js";

const MODERN_ALIAS = /^([ \t]*)Modern DSLs(\s*=)/gm;

/**
 * Loads a workflow file (`.sloth` or `.lua`) into workflow models. The file's
 * top level runs in a worker; every Lua function it declares becomes a model
 * function that calls it in a worker, which keeps the file loaded for its
 * later calls.
 * Throws a {@link DslError} (syntax, runtime or invalid declaration) whose
 * message names the file and line and quotes the offending line.
 */
export async function loadWorkflowFile(
  path: string,
  options: LoadOptions = {},
): Promise<LoadedWorkflows> {
  const file = resolve(path);
  const shown = displayPath(file, options.displayRoot);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const reason =
      (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message;
    throw new DslError("SLOTH_DSL_FILE", `cannot read workflow file ${shown}: ${reason}`, {
      cause: e,
    });
  }
  // A NUL byte never belongs in a Lua source: an executable or an archive
  // given by mistake would otherwise fail with its bytes as the "line".
  if (text.slice(0, 8192).includes("\0"))
    throw new DslError("SLOTH_DSL_FILE", `cannot load ${shown}: it is a binary file, not Lua`, {
      hint: "give the path of a .sloth or .lua workflow file",
    });
  const notices: string[] = [];
  const alias = new RegExp(MODERN_ALIAS.source, "m").exec(text);
  if (alias) {
    const line = text.slice(0, alias.index).split("\n").length;
    text = text.replace(
      MODERN_ALIAS,
      (_, indent: string, eq: string) => `${indent}TaskDefinitions${eq}`,
    );
    notices.push(`${shown}:${line}: 'Modern DSLs' is not valid Lua; read as TaskDefinitions`);
  }
  const baseDir = dirname(file);
  const spec: SessionSpec = {
    id: randomUUID(),
    file,
    source: text,
    baseDir,
    values: options.values ?? {},
    params: options.params ?? {},
    modules: modulesOf(options),
  };
  const logger = options.logger;
  const loadTimeoutMs = options.loadTimeoutMs ?? 30_000;
  const end = await runJob(
    { type: "load", spec },
    {
      timeoutMs: loadTimeoutMs,
      onLog: (stream, t) => toLogger(logger, shown, stream, t),
    },
  ).catch((e: unknown) => {
    if (e instanceof DslError && /did not finish within/.test(e.message))
      throw new DslError(
        "SLOTH_LUA_WORKER",
        `cannot load ${shown}: its top-level code ran for more than ${loadTimeoutMs >= 1000 ? `${Math.round(loadTimeoutMs / 1000)} s` : `${loadTimeoutMs} ms`}`,
        {
          cause: e,
          hint: "look for a loop or a long wait outside any task's command (top-level code runs when the file is loaded)",
        },
      );
    throw e;
  });
  if (end.type === "failed") throw jobError(end.error, baseDir, options.displayRoot);
  if (end.type !== "loaded")
    throw new DslError("SLOTH_LUA_WORKER", `cannot load ${shown}: unexpected worker reply`);
  const raw = JSON.parse(end.raw) as RawFile;
  const caller: LuaCaller = {
    call: (ref: FnRef, args: Value[], opts): Promise<CallResult> =>
      callLua(
        spec,
        ref,
        args,
        {
          workdir: opts.workdir ?? baseDir,
          env: {
            ...opts.env,
            ...(opts.runId ? { SLOTH_RUN_ID: opts.runId } : {}),
            ...(opts.taskName ? { SLOTH_TASK: opts.taskName } : {}),
          },
          signal: opts.signal,
          timeoutMs: opts.timeoutMs,
          onLog: (stream, t) => {
            if (opts.log) opts.log.write(stream, t);
            else toLogger(logger, shown, stream, t);
          },
        },
        options.displayRoot,
      ),
  };
  const converted = convertFile(raw, {
    scope: { file: shown, lines: text.split("\n") },
    index: new SourceIndex(text),
    caller,
    file,
    baseDir,
    notices,
  });
  if (options.prewarm !== false) {
    prewarm(Math.max(0, ...[...converted.groups, ...converted.workflows].map(luaParallelism)));
  }
  const sources = [...new Set((raw.files ?? []).map((f) => resolve(f)))]
    .filter((f) => f !== file)
    .sort();
  return { file, ...converted, notices, sources };
}

/**
 * Loads a file and reports problems instead of throwing: load errors,
 * dependencies on tasks that do not exist in the same workflow, and cycles.
 */
export async function validate(path: string, options: LoadOptions = {}): Promise<ValidationResult> {
  let loaded: LoadedWorkflows;
  try {
    loaded = await loadWorkflowFile(path, { prewarm: false, ...options });
  } catch (e) {
    if (!isSlothError(e)) throw e;
    const loc = (e as DslError).location;
    return {
      ok: false,
      problems: [{ code: e.code, message: e.message, file: loc?.file, line: loc?.line }],
      notices: [],
    };
  }
  const problems: ValidationResult["problems"] = [];
  for (const wf of [...loaded.groups, ...loaded.workflows]) {
    const names = new Set(wf.tasks.map((t) => t.name));
    for (const t of wf.tasks) {
      for (const d of t.dependsOn) {
        if (!names.has(d)) {
          const at = t.source ? `${t.source.file}:${t.source.line}: ` : "";
          problems.push({
            code: "SLOTH_DSL_INVALID",
            message: `${at}task '${t.name}' depends on unknown task '${d}' in '${wf.name}'`,
            file: t.source?.file,
            line: t.source?.line,
          });
        }
      }
    }
    if (wf.tasks.length === 0)
      problems.push({
        code: "SLOTH_DSL_INVALID",
        message: `'${wf.name}' has no tasks: list them with :tasks({ ... }) (or tasks = { ... } in a group), checking that each variable there is defined`,
      });
    const cycle = findCycle(wf.tasks);
    const first = cycle && wf.tasks.find((t) => t.name === cycle[0]);
    if (cycle) {
      const at = first?.source ? `${first.source.file}:${first.source.line}: ` : "";
      problems.push({
        code: "SLOTH_DSL_INVALID",
        message: `${at}dependency cycle ${cycle.join(" -> ")} in '${wf.name}'`,
        file: first?.source?.file,
        line: first?.source?.line,
      });
    }
  }
  return { ok: problems.length === 0, problems, notices: loaded.notices, loaded };
}

// How many Lua calls of a workflow can run at once, at most.
function luaParallelism(wf: WorkflowModel): number {
  const lua = wf.tasks.filter((t) => t.command?.kind === "function").length;
  return Math.min(lua, wf.config.maxParallelTasks);
}

async function callLua(
  spec: SessionSpec,
  ref: FnRef,
  args: Value[],
  opts: RunJobOptions & { workdir: string; env: Record<string, string> },
  root?: string,
): Promise<CallResult> {
  try {
    const { workdir, env, ...run } = opts;
    const end = await runJob({ type: "call", spec, fnKey: ref.key, args, workdir, env }, run);
    if (end.type === "called") {
      const r = end.result;
      return r.ok || !r.location ? r : { ...r, location: relocate(r.location, spec.baseDir, root) };
    }
    if (end.type === "failed") {
      const e = jobError(end.error, spec.baseDir, root);
      return { ok: false, reason: e.message };
    }
    return { ok: false, reason: "unexpected worker reply" };
  } catch (e) {
    if (e instanceof JobAborted) return { ok: false, reason: e.message };
    throw e;
  }
}

// Worker locations are relative to the workflow's directory; messages show
// paths relative to the current directory, like the load errors.
function relocate(location: SourceLocation, baseDir: string, root?: string): SourceLocation {
  const file = isAbsolute(location.file) ? location.file : join(baseDir, location.file);
  return { ...location, file: displayPath(file, root) };
}

function jobError(err: JobError, baseDir: string, root?: string): DslError {
  const location = err.location && relocate(err.location, baseDir, root);
  return new DslError(err.code, formatLocated(withModuleHint(err.reason), location), {
    location,
  });
}

// Paths in messages: relative to the current directory when below it.
function displayPath(file: string, root = process.cwd()): string {
  const rel = relative(resolve(root), file);
  return rel === "" || rel.startsWith("..") || isAbsolute(rel) ? file : rel;
}

const LEVELED = /^(DEBUG|INFO|WARN|ERROR) ([\s\S]*)$/;

// Output with no task log (top level, workflow hooks) goes to the logger:
// a Lua `log.warn(...)` line at its own level, without the level word again.
function toLogger(
  logger: LoadOptions["logger"],
  file: string,
  stream: "stdout" | "stderr" | "log",
  text: string,
): void {
  if (!logger) return;
  const line = text.replace(/\n$/, "");
  const m = stream === "log" ? LEVELED.exec(line) : null;
  if (!m) {
    logger.info({ stream, file }, line);
    return;
  }
  const level = m[1]!.toLowerCase() as "debug" | "info" | "warn" | "error";
  logger[level]({ stream, file }, m[2]!);
}

function modulesOf(options: LoadOptions): LuaModuleSpec[] {
  const modules = [...(options.modules ?? [])];
  const state =
    options.state ?? (options.statePath === undefined ? undefined : { path: options.statePath });
  if (state !== undefined && !modules.some((m) => m.name === "state")) {
    const url = new URL(
      `./modules/state.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`,
      import.meta.url,
    );
    if (existsSync(url))
      modules.push({ name: "state", url: url.href, options: state as LuaModuleSpec["options"] });
  }
  // A `stack` global everywhere: a stub where the CLI gives none (see its message).
  if (!modules.some((m) => m.name === "stack")) {
    const url = new URL(
      `./modules/stack-stub.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`,
      import.meta.url,
    );
    if (existsSync(url)) modules.push({ name: "stack", url: url.href });
  }
  // Likewise `secrets`: the CLI's run gives the real one.
  if (!modules.some((m) => m.name === "secrets")) {
    const url = new URL(
      `./modules/secrets-stub.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`,
      import.meta.url,
    );
    if (existsSync(url)) modules.push({ name: "secrets", url: url.href });
  }
  return modules.map((m) => ({
    ...m,
    url: m.url.startsWith("file:") || !isAbsolute(m.url) ? m.url : pathToFileURL(m.url).href,
  }));
}
