import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TaskContext, TaskLog, TaskModel, TaskOutcome, Value } from "@sloth/workflow";
import { loadWorkflowFile } from "./load.js";
import type { LoadedWorkflows, LoadOptions } from "./types.js";

/** A temp directory for one test file's workflows; `cleanup()` removes it. */
export function tempDir(): {
  dir: string;
  write(name: string, text: string): string;
  cleanup(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), "sloth-dsl-"));
  return {
    dir,
    write(name, text) {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A task context for calling model functions directly, with its log captured. */
export function context(
  task: TaskModel,
  over: Partial<TaskContext> = {},
): TaskContext & { lines: Array<[string, string]> } {
  const lines: Array<[string, string]> = [];
  const log: TaskLog = { write: (stream, text) => lines.push([stream, text]) };
  return {
    params: { ...task.params } as Record<string, Value>,
    deps: {},
    values: {},
    workdir: over.workdir ?? process.cwd(),
    signal: new AbortController().signal,
    log,
    runId: "test",
    taskName: task.name,
    attempt: 1,
    lines,
    ...over,
  };
}

/** Runs a task's function command. */
export async function runCommand(
  task: TaskModel,
  over: Partial<TaskContext> = {},
): Promise<TaskOutcome & { log: string }> {
  if (task.command?.kind !== "function")
    throw new Error(`task ${task.name} has no function command`);
  const ctx = context(task, over);
  const outcome = await task.command.fn(ctx);
  return { ...outcome, log: ctx.lines.map(([, t]) => t).join("") };
}

/**
 * Loads without prewarming workers: most tests call one or two functions, and
 * booting extra TypeScript workers would only slow the suite down.
 */
export function loadFile(path: string, options: LoadOptions = {}): Promise<LoadedWorkflows> {
  return loadWorkflowFile(path, { prewarm: false, ...options });
}
