import { WorkflowError } from "./errors.js";
import type { TaskModel, WorkflowModel } from "./model.js";

/** Seed 003's stack keys, as a user writes them in `:config({...})`. */
const STACK_KEYS = [
  ["requireLock", "require_lock"],
  ["createSnapshot", "create_snapshot"],
  ["validateBefore", "validate_before"],
  ["detectDrift", "detect_drift"],
] as const;

/**
 * Checks that a workflow can run: unique task names, known dependencies, no
 * cycle, sane settings, and stack keys (require_lock, create_snapshot, ...)
 * only in a run deploying a stack (`options.stack`). Throws a
 * {@link WorkflowError} naming the culprit.
 */
export function validateWorkflow(
  model: WorkflowModel,
  options: { stack?: string | undefined } = {},
): void {
  const byName = new Map<string, TaskModel>();
  for (const task of model.tasks) {
    if (!task.name) throw invalid(model, "a task has no name");
    if (byName.has(task.name)) throw invalid(model, `task '${task.name}' is defined twice`);
    byName.set(task.name, task);
  }
  for (const task of model.tasks) {
    for (const dep of task.dependsOn) {
      if (!byName.has(dep)) {
        throw new WorkflowError(
          "SLOTH_WORKFLOW_UNKNOWN_DEPENDENCY",
          `cannot run workflow '${model.name}': task '${task.name}' depends on unknown task '${dep}'`,
          { details: { task: task.name, dependency: dep } },
        );
      }
    }
    if (!Number.isInteger(task.retries) || task.retries < 0) {
      throw invalid(
        model,
        `task '${task.name}' has retries ${task.retries}, expected an integer >= 0`,
      );
    }
  }
  const cycle = findCycle(model.tasks);
  if (cycle) {
    throw new WorkflowError(
      "SLOTH_WORKFLOW_CYCLE",
      `cannot run workflow '${model.name}': dependency cycle ${cycle.join(" -> ")}`,
      { details: { cycle } },
    );
  }
  const max = model.config.maxParallelTasks;
  if (!Number.isInteger(max) || max < 1) {
    throw invalid(model, `max_parallel_tasks is ${max}, expected an integer >= 1`);
  }
  if (!options.stack) checkStackKeys(model);
}

/** Throws when the workflow sets a stack key: only a run deploying a stack carries them out. */
function checkStackKeys(model: WorkflowModel): void {
  const set: string[] = STACK_KEYS.filter(([key]) => model.config[key] === true).map(
    ([, lua]) => lua,
  );
  if (model.config.onFailure === "rollback") set.push('on_failure = "rollback"');
  if (set.length === 0) return;
  throw new WorkflowError(
    "SLOTH_WORKFLOW_NEEDS_STACKS",
    `cannot run workflow '${model.name}': ${set.join(", ")} ${set.length === 1 ? "needs" : "need"} a stack`,
    {
      hint: "run it as a stack's deployment (`sloth-runner run STACK -f FILE`), or remove these keys from the workflow's config",
      details: { keys: set },
    },
  );
}

function invalid(model: WorkflowModel, reason: string): WorkflowError {
  return new WorkflowError(
    "SLOTH_WORKFLOW_INVALID",
    `cannot run workflow '${model.name}': ${reason}`,
  );
}

/** Returns one dependency cycle as a closed path (`a, b, a`), or undefined. */
export function findCycle(tasks: readonly TaskModel[]): string[] | undefined {
  const deps = new Map(tasks.map((t) => [t.name, t.dependsOn] as const));
  const state = new Map<string, 1 | 2>(); // 1: on the current path, 2: done
  const path: string[] = [];
  // Iterative DFS: a deep chain of thousands of tasks must not overflow the stack.
  for (const root of deps.keys()) {
    if (state.has(root)) continue;
    const stack: Array<{ name: string; next: number }> = [{ name: root, next: 0 }];
    state.set(root, 1);
    path.push(root);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const children = deps.get(top.name) ?? [];
      if (top.next < children.length) {
        const child = children[top.next++]!;
        const s = state.get(child);
        if (s === 1) return [...path.slice(path.indexOf(child)), child];
        if (s === undefined && deps.has(child)) {
          state.set(child, 1);
          path.push(child);
          stack.push({ name: child, next: 0 });
        }
      } else {
        state.set(top.name, 2);
        path.pop();
        stack.pop();
      }
    }
  }
  return undefined;
}

/**
 * Groups tasks into levels: level 0 has no dependencies, level n depends only
 * on earlier levels. Tasks of one level can run in parallel. Assumes a
 * validated model; keeps declaration order inside a level.
 */
export function planLevels(model: WorkflowModel): string[][] {
  const level = new Map<string, number>();
  const byName = new Map(model.tasks.map((t) => [t.name, t] as const));
  const depth = (name: string): number => {
    const known = level.get(name);
    if (known !== undefined) return known;
    // Validated models are acyclic, so this recursion terminates; its depth is
    // the longest chain, which stays small for real workflows.
    const task = byName.get(name);
    const d = task ? Math.max(-1, ...task.dependsOn.map(depth)) + 1 : 0;
    level.set(name, d);
    return d;
  };
  const levels: string[][] = [];
  for (const task of model.tasks) {
    const d = depth(task.name);
    const at = levels[d] ?? [];
    at.push(task.name);
    levels[d] = at;
  }
  return levels;
}

/**
 * Keeps only the named tasks and everything they depend on (transitively),
 * in declaration order. Throws when a name is unknown.
 */
export function selectTasks(model: WorkflowModel, names: readonly string[]): WorkflowModel {
  if (names.length === 0) return model;
  const byName = new Map(model.tasks.map((t) => [t.name, t] as const));
  const keep = new Set<string>();
  const queue = [...names];
  for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
    if (keep.has(name)) continue;
    const task = byName.get(name);
    if (!task) {
      throw new WorkflowError(
        "SLOTH_WORKFLOW_UNKNOWN_TASK",
        `cannot select task '${name}': workflow '${model.name}' has no such task`,
        {
          hint: `its tasks are: ${model.tasks.map((t) => t.name).join(", ")}`,
          details: { task: name },
        },
      );
    }
    keep.add(name);
    queue.push(...task.dependsOn);
  }
  return { ...model, tasks: model.tasks.filter((t) => keep.has(t.name)) };
}
