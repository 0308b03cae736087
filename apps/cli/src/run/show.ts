import type { RunPlan, WorkflowModel } from "@sloth/workflow";
import { formatDuration, painter, println, table } from "../output.js";

/** The JSON-able description of a workflow that `workflow show` prints. */
export interface ModelDescription {
  name: string;
  description: string | null;
  version: string | null;
  file: string | null;
  config: {
    maxParallelTasks: number;
    failFast: boolean;
    timeoutMs: number | null;
  };
  levels: string[][];
  tasks: Array<{
    name: string;
    description: string | null;
    dependsOn: string[];
    runsOn: string;
    retries: number;
    timeoutMs: number | null;
    command: "shell" | "function" | "none";
    tags: string[];
  }>;
}

/** Describes a model (without its functions) together with its plan. */
export function describeModel(model: WorkflowModel, plan: RunPlan): ModelDescription {
  return {
    name: model.name,
    description: model.description ?? null,
    version: model.version ?? null,
    file: model.file ?? null,
    config: {
      maxParallelTasks: model.config.maxParallelTasks,
      failFast: model.config.failFast,
      timeoutMs: model.config.timeoutMs ?? null,
    },
    levels: plan.levels,
    tasks: model.tasks.map((t, i) => ({
      name: t.name,
      description: t.description ?? null,
      dependsOn: t.dependsOn,
      runsOn: plan.tasks[i]?.runsOn ?? "local",
      retries: t.retries,
      timeoutMs: t.timeoutMs ?? null,
      command: t.command?.kind ?? "none",
      tags: t.tags,
    })),
  };
}

/** Prints a description for people. */
export function printModel(d: ModelDescription): void {
  const c = painter(process.stdout);
  println(
    `${c.bold(d.name)}${d.version ? ` ${c.dim(`v${d.version}`)}` : ""}${d.description ? `: ${d.description}` : ""}`,
  );
  const timeout = d.config.timeoutMs === null ? "none" : formatDuration(d.config.timeoutMs);
  println(
    `  max parallel ${d.config.maxParallelTasks}, fail fast ${d.config.failFast ? "on" : "off"}, timeout ${timeout}`,
  );
  const rows = [
    ["TASK", "DEPENDS ON", "RUNS ON", "RETRIES", "TIMEOUT", "DESCRIPTION"].map((h) => c.bold(h)),
  ];
  for (const t of d.tasks) {
    rows.push([
      t.name,
      t.dependsOn.join(", ") || "-",
      t.runsOn,
      String(t.retries),
      t.timeoutMs === null ? "-" : formatDuration(t.timeoutMs),
      t.description ?? "",
    ]);
  }
  println(table(rows));
  println(`  levels: ${d.levels.map((l) => l.join(" ")).join(" → ")}`);
}
