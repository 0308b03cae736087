import fs from "node:fs";
import path from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { RunTaskRequest, RunTaskResponseSchema } from "@sloth/proto";
import type { TaskModel, TaskOutput, Value, WorkflowModel } from "@sloth/workflow";
import type { AgentLogger } from "./logger.js";
import { JOB_MARK_ENV } from "./orphans.js";

type Response = MessageInitShape<typeof RunTaskResponseSchema>;

/** A working directory lent to one task. */
export interface TaskWorkspace {
  dir: string;
  /** Gives the directory back once the task and its changes are done. */
  release(): void;
}

/** What the task runner needs from the agent around it. */
export interface TaskRunnerContext {
  name: string;
  /** Folder for bundles and workspaces (under the agent's data dir). */
  scratchDir: string;
  logger: AgentLogger;
  /**
   * The task's working directory built to the request's manifest, given back
   * with `release` after the task (to be kept for recycling); without it,
   * tasks run in a fresh empty directory.
   */
  workspace?: ((manifestJson: string) => Promise<TaskWorkspace>) | undefined;
  /** Packs what the task changed in `dir` since `manifestJson`: chunks, then the deleted paths. */
  changes?:
    | ((
        dir: string,
        manifestJson: string,
      ) => Promise<{
        chunks: AsyncIterable<Uint8Array>;
        deleted: string[];
        /** What cannot travel back: symlinks leaving the workspace, sockets, fifos. */
        skipped?: string[] | undefined;
      }>)
    | undefined;
  /** Options for loading the workflow on the agent (such as where Lua `state` points). */
  loadOptions?: Record<string, unknown> | undefined;
}

function parseObject(json: string, what: string): Record<string, Value> {
  if (!json) return {};
  const v: unknown = JSON.parse(json);
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new Error(`${what} must be a JSON object`);
  return v as Record<string, Value>;
}

/** Writes the shipped sources under `dir`, refusing paths that leave it. */
function writeSources(dir: string, sources: RunTaskRequest["sources"]): void {
  for (const s of sources) {
    const rel = path.posix.normalize(s.path.replace(/\\/g, "/"));
    if (rel.startsWith("../") || rel === ".." || path.posix.isAbsolute(rel) || rel.includes("\0")) {
      throw new Error(`refusing source file '${s.path}': it leaves the bundle`);
    }
    const target = path.join(dir, rel);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, s.content);
  }
}

function findTask(
  loaded: { workflows: WorkflowModel[]; groups: WorkflowModel[] },
  workflow: string,
  task: string,
) {
  const all = [...loaded.workflows, ...loaded.groups];
  const model = all.find((m) => m.name === workflow) ?? (all.length === 1 ? all[0] : undefined);
  return { model, task: model?.tasks.find((t) => t.name === task) };
}

/**
 * The one-task workflow run on the agent: the task itself (no hooks,
 * conditions, retries or delegation: the runner that delegated it handles
 * those) and its dependencies as already-completed stubs, so `deps` arrive
 * exactly as in a local run.
 */
function singleTaskModel(
  model: WorkflowModel,
  task: TaskModel,
  workdir: string,
  timeoutMs: number,
): WorkflowModel {
  const stubs: TaskModel[] = task.dependsOn.map((name) => ({
    name,
    dependsOn: [],
    retries: 0,
    retryBackoff: "fixed",
    params: {},
    tags: [],
    hooks: {},
    artifacts: [],
    consumes: [],
  }));
  const remote: TaskModel = {
    ...task,
    delegateTo: undefined,
    hooks: {},
    runIf: undefined,
    abortIf: undefined,
    retries: 0,
    artifacts: [],
    consumes: [],
    workdir,
    timeoutMs: timeoutMs > 0 ? timeoutMs : task.timeoutMs,
  };
  return {
    ...model,
    baseDir: workdir,
    tasks: [...stubs, remote],
    hooks: {},
    config: {
      ...model.config,
      maxParallelTasks: 1,
      failFast: false,
      requireLock: undefined,
      createSnapshot: undefined,
      validateBefore: undefined,
      detectDrift: undefined,
      onFailure: undefined,
    },
  };
}

/** Runs one delegated task; yields its log, its result, then its workspace changes. */
export async function* runDelegatedTask(
  req: RunTaskRequest,
  ctx: TaskRunnerContext,
  signal: AbortSignal,
  /** Set as SLOTH_AGENT_JOB for the task's processes (see orphans.ts). */
  mark?: string,
): AsyncGenerator<Response> {
  const started = Date.now();
  fs.mkdirSync(ctx.scratchDir, { recursive: true, mode: 0o700 });
  const bundle = fs.mkdtempSync(path.join(ctx.scratchDir, "bundle-"));
  let workspace: TaskWorkspace | undefined;
  // Settles once the task's processes are gone: only then is its folder given back.
  let running: Promise<unknown> = Promise.resolve();
  const fail = (message: string, retryable = false): Response => ({
    event: {
      case: "result",
      value: { ok: false, message, retryable, durationMs: BigInt(Date.now() - started) },
    },
  });
  try {
    let params: Record<string, Value>;
    let values: Record<string, Value>;
    let deps: Record<string, TaskOutput | undefined>;
    try {
      writeSources(bundle, req.sources);
      params = parseObject(req.paramsJson, "params");
      values = parseObject(req.valuesJson, "values");
      deps = parseObject(req.depsJson, "deps") as Record<string, TaskOutput>;
    } catch (e) {
      yield fail(`agent '${ctx.name}' refused the task: ${(e as Error).message}`);
      return;
    }
    if (req.manifestJson && ctx.workspace) workspace = await ctx.workspace(req.manifestJson);
    else {
      const dir = fs.mkdtempSync(path.join(ctx.scratchDir, "work-"));
      workspace = { dir, release: () => removeLater(ctx, dir) };
    }
    const workdir = workspace.dir;
    const { loadWorkflowFile } = await import("@sloth/dsl-lua");
    const { runWorkflow } = await import("@sloth/workflow");
    let loaded: Awaited<ReturnType<typeof loadWorkflowFile>>;
    try {
      loaded = await loadWorkflowFile(path.join(bundle, req.workflowFile), {
        values,
        params,
        prewarm: false,
        // Messages name the file as the runner knows it, not this copy.
        displayRoot: bundle,
        ...ctx.loadOptions,
      });
    } catch (e) {
      const msg = (e as Error).message;
      // Top-level code reading a data file beside the workflow: only Lua files travel.
      const hint = /no such file|cannot (read|open)/i.test(msg)
        ? "; the top level runs on the agent too, which gets the workflow and the Lua files it requires, not other files beside it: read data files inside a task, whose workspace is shipped"
        : "";
      // Before the quoted source line, when there is one.
      const nl = msg.indexOf("\n");
      const told = nl < 0 ? msg + hint : msg.slice(0, nl) + hint + msg.slice(nl);
      yield fail(`agent '${ctx.name}' cannot load the workflow: ${told}`);
      return;
    }
    const found = findTask(loaded, req.workflow, req.task);
    if (!found.model || !found.task) {
      yield fail(
        `task '${req.task}' of workflow '${req.workflow}' not found on agent '${ctx.name}'`,
      );
      return;
    }
    const model = singleTaskModel(found.model, found.task, workdir, Number(req.timeoutMs));
    const handle = runWorkflow(model, {
      runId: req.runId || undefined,
      params,
      values,
      completed: deps,
      signal,
      dataDir: path.join(ctx.scratchDir, "runs"),
      ...(mark ? { env: { [JOB_MARK_ENV]: mark } } : {}),
    });
    running = handle.result.catch(() => {});
    let outcome: { ok: boolean; message: string; output?: TaskOutput | undefined } | undefined;
    for await (const ev of handle.events) {
      if (ev.type === "task.log" && ev.task === req.task) {
        yield { event: { case: "log", value: { stream: ev.stream, text: ev.text } } };
      } else if (ev.type === "task.succeeded" && ev.task === req.task) {
        outcome = { ok: true, message: ev.message ?? "", output: ev.output };
      } else if (ev.type === "task.failed" && ev.task === req.task) {
        outcome = { ok: false, message: ev.message, output: ev.output };
      } else if (ev.type === "task.timed_out" && ev.task === req.task) {
        outcome = {
          ok: false,
          message: `timed out after ${ev.timeoutMs}ms on agent '${ctx.name}'`,
        };
      } else if (ev.type === "task.cancelled" && ev.task === req.task) {
        outcome = { ok: false, message: `cancelled on agent '${ctx.name}': ${ev.reason}` };
      }
    }
    const result = await handle.result;
    if (signal.aborted) return;
    const o = outcome ?? { ok: false, message: result.message ?? "the task did not run" };
    yield {
      event: {
        case: "result",
        value: {
          ok: o.ok,
          message: o.message,
          outputJson: o.output === undefined ? "" : JSON.stringify(o.output),
          retryable: !o.ok,
          durationMs: BigInt(Date.now() - started),
        },
      },
    };
    if (req.returnChanges && req.manifestJson && ctx.changes) {
      const { chunks, deleted, skipped } = await ctx.changes(workdir, req.manifestJson);
      if (skipped && skipped.length > 0) {
        const shown = skipped.slice(0, 10).join(", ");
        const more = skipped.length > 10 ? ` and ${skipped.length - 10} more` : "";
        yield {
          event: {
            case: "log",
            value: {
              stream: "log",
              text: `not brought back (symlinks leaving the workspace, sockets, fifos, names that are not valid UTF-8): ${shown}${more}\n`,
            },
          },
        };
      }
      for await (const chunk of chunks) yield { event: { case: "changes", value: chunk } };
      yield { event: { case: "changesEnd", value: { deleted } } };
    }
  } finally {
    removeLater(ctx, bundle);
    const lent = workspace;
    if (lent) void running.then(() => lent.release());
  }
}

/** Removes a folder in the background: deleting a large tree is slow and must not delay the reply. */
function removeLater(ctx: TaskRunnerContext, dir: string): void {
  fs.promises.rm(dir, { recursive: true, force: true }).catch((e: unknown) => {
    ctx.logger.warn({ dir, err: String(e) }, "cannot remove task scratch folder");
  });
}

/** The default scratch folder of an agent's delegated tasks. */
/**
 * Removes, in the background, the task folders (`bundle-*`, `work-*`) an
 * earlier run of the agent left in `scratchDir` when it was killed mid-task.
 * Called at start, before any task runs; returns how many it found.
 */
export function removeStaleTaskFolders(
  scratchDir: string,
  onError: (dir: string, err: unknown) => void = () => undefined,
): number {
  let names: string[];
  try {
    names = fs.readdirSync(scratchDir);
  } catch {
    return 0;
  }
  const stale = names.filter((n) => n.startsWith("bundle-") || n.startsWith("work-"));
  for (const n of stale) {
    const dir = path.join(scratchDir, n);
    fs.promises.rm(dir, { recursive: true, force: true }).catch((e: unknown) => onError(dir, e));
  }
  return stale.length;
}

export function defaultScratchDir(dataDir: string, name: string): string {
  return path.join(dataDir, "agents", name, "tasks");
}
