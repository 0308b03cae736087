import { describeTarget } from "./attempt.js";
import { planLevels, validateWorkflow } from "./dag.js";
import type { WorkflowModel } from "./model.js";

/** One task in a {@link RunPlan}. */
export interface PlannedTask {
  name: string;
  /** 0 for tasks without dependencies; tasks of one level may run together. */
  level: number;
  dependsOn: string[];
  /** "local", or the delegation target ("agent 'web-1'"). */
  runsOn: string;
  description?: string | undefined;
}

/** What a run would do, without running anything (`--dry-run`). */
export interface RunPlan {
  workflow: string;
  maxParallel: number;
  failFast: boolean;
  /** Task names by level, in declaration order. */
  levels: string[][];
  /** Tasks in declaration order. */
  tasks: PlannedTask[];
}

/** Validates the workflow (throwing as `runWorkflow` would) and describes its plan. */
export function planRun(
  model: WorkflowModel,
  options: {
    maxParallel?: number | undefined;
    failFast?: boolean | undefined;
    stack?: string | undefined;
  } = {},
): RunPlan {
  validateWorkflow(model, { stack: options.stack });
  const levels = planLevels(model);
  const levelOf = new Map<string, number>();
  levels.forEach((names, i) => {
    for (const n of names) levelOf.set(n, i);
  });
  return {
    workflow: model.name,
    maxParallel: options.maxParallel ?? model.config.maxParallelTasks,
    failFast: options.failFast ?? model.config.failFast,
    levels,
    tasks: model.tasks.map((t) => ({
      name: t.name,
      level: levelOf.get(t.name) ?? 0,
      dependsOn: [...t.dependsOn],
      runsOn: `${describeTarget(t)}${t.delegateTo?.fallback === "local" ? ", else here" : ""}`,
      description: t.description,
    })),
  };
}
