import path from "node:path";
import type { LoadedWorkflows } from "@sloth/dsl-lua";
import type { HistoryStore, RunDetail, SourceFile } from "@sloth/history";
import type { RunEvent, RunResult, TaskOutput, Value, WorkflowModel } from "@sloth/workflow";
import { CliError } from "../context.js";
import { eprintln } from "../output.js";

/** One run being recorded. */
export interface Recording {
  event(event: RunEvent): void;
  finish(result: RunResult): void;
}

/** Records the runs of one `sloth-runner run` in history.db. */
export interface RunHistory {
  /** Starts recording a run; undefined when history is off or unavailable. */
  begin(model: WorkflowModel, runId: string): Recording | undefined;
  close(): void;
}

/** What a run records besides its model: the file, its hash, values and params. */
export interface RunFacts {
  file: string;
  values: Record<string, Value>;
  params: Record<string, Value>;
  resumedFrom?: string | undefined;
  /** The other files the workflow read when it loaded (absolute paths). */
  sources?: readonly string[] | undefined;
  /** Tasks reused from the resumed run. */
  reused?: readonly string[] | undefined;
  /** The stack the run deploys. */
  stack?: string | undefined;
}

/**
 * Opens history.db for a run. History must never stop a run: when the
 * database cannot be opened or written, a notice goes to stderr and the run
 * goes on unrecorded.
 */
export async function openRunHistory(path: string, facts: RunFacts): Promise<RunHistory> {
  let store: HistoryStore | undefined;
  let fileHash: string | undefined;
  let sources: SourceFile[] | undefined;
  try {
    const { openHistory, hashFile, hashSources } = await import("@sloth/history");
    fileHash = hashFile(facts.file);
    sources = hashSources(facts.file, facts.sources ?? []);
    store = openHistory({ path });
  } catch (e) {
    const message = (e as Error).message;
    eprintln(
      `notice: run not recorded: ${message.startsWith("cannot open") ? message : `cannot open ${path}: ${message}`}`,
    );
  }
  return {
    begin(model, runId) {
      if (!store) return undefined;
      const tasks = model.tasks.map((t) => t.name);
      let recorder: ReturnType<HistoryStore["record"]>;
      try {
        recorder = store.record({
          id: runId,
          workflow: model.name,
          tasks,
          fileHash,
          ...facts,
          sources,
        });
      } catch (e) {
        // Locked for too long, a full disk, a damaged page: the run goes on.
        eprintln(
          `notice: run ${runId} not recorded: cannot write ${path}: ${(e as Error).message}`,
        );
        return undefined;
      }
      return {
        event: (e) => recorder.event(e),
        finish(result) {
          recorder.finish(result);
          const err = recorder.error;
          if (err) eprintln(`notice: run ${runId} only partly recorded: ${err.message}`);
        },
      };
    },
    close: () => store?.close(),
  };
}

/** A recorded run to resume: what to reuse and where the file is. */
export interface Resume {
  run: RunDetail;
  file: string;
  completed: Record<string, TaskOutput | undefined>;
  rerun: string[];
}

/**
 * Reads the run to resume and checks its file: refused when the file's hash
 * changed since, unless `force`. `file` overrides the recorded path (a moved
 * file).
 */
export async function loadResume(
  historyDb: string,
  id: string,
  options: { force: boolean; file?: string | undefined },
): Promise<Resume> {
  const { openHistory, planResume, hashFile, changedSources } = await import("@sloth/history");
  const store = openHistory({ path: historyDb });
  let run: RunDetail;
  try {
    run = store.getRun(id);
  } finally {
    store.close();
  }
  if (run.status === "running") {
    throw new CliError(`cannot resume run ${run.id}: it is still running (pid ${run.pid})`, {
      hint: "wait for it to end, or stop it first",
    });
  }
  const file = options.file ?? run.file;
  if (!file) throw new CliError(`cannot resume run ${run.id}: it has no workflow file`);
  let hash: string;
  try {
    hash = hashFile(file);
  } catch (e) {
    throw new CliError(
      `cannot resume run ${run.id}: cannot read '${file}': ${(e as Error).message}`,
      {
        hint: "pass the workflow file's new path: `sloth-runner run FILE --resume ID`",
      },
    );
  }
  if (hash !== run.fileHash && !options.force) {
    const other =
      run.file !== undefined && run.file !== null && path.resolve(file) !== path.resolve(run.file);
    throw new CliError(
      other
        ? `cannot resume run ${run.id}: it ran '${run.file}', and '${file}' is a different file`
        : `cannot resume run ${run.id}: '${file}' changed since that run`,
      { hint: "pass --force to resume it anyway, or run the workflow anew" },
    );
  }
  const [changed] = options.force ? [] : changedSources(file, run.sources);
  if (changed) {
    const what = changed.reason === "missing" ? "is gone" : "changed since that run";
    throw new CliError(
      `cannot resume run ${run.id}: '${changed.path}' (read by '${file}') ${what}`,
      { hint: "pass --force to resume it anyway, or run the workflow anew" },
    );
  }
  if (run.status === "interrupted") {
    // Its runner died (SIGKILL, a crash) without stopping the tasks it was
    // running: they must not run twice, alongside their resumed copies.
    const running = new Set(run.tasks.filter((t) => t.status === "interrupted").map((t) => t.name));
    const { stopRunLeftovers } = await import("@sloth/workflow");
    const stopped = await stopRunLeftovers(run.id, running);
    if (stopped.length > 0) {
      const tasks = [...new Set(stopped.map((p) => `'${p.task}'`))].join(", ");
      eprintln(
        `notice: stopped ${stopped.length} process(es) of task ${tasks} still running since run ${run.id} was interrupted`,
      );
    }
  }
  return { run, file, ...planResume(run) };
}

/**
 * The model of the resumed run: its workflow (or group) by name, cut down
 * to the tasks that run had (it may have run a `-t` subset).
 */
export function resumeModel(
  loaded: LoadedWorkflows,
  run: RunDetail,
  select: (m: WorkflowModel, names: string[]) => WorkflowModel,
): WorkflowModel {
  const model = [...loaded.workflows, ...loaded.groups].find((m) => m.name === run.workflow);
  if (!model) {
    throw new CliError(
      `cannot resume run ${run.id}: workflow '${run.workflow}' is gone from the file`,
    );
  }
  const known = new Set(model.tasks.map((t) => t.name));
  const names = run.tasks.map((t) => t.name).filter((n) => known.has(n));
  return names.length === model.tasks.length ? model : select(model, names);
}
