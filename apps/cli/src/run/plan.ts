import type { RunPlan } from "@sloth/workflow";
import { painter, println, table } from "../output.js";
import { plural } from "./display.js";

/** Prints dry-run plans: JSON, or per workflow its levels and where each task runs. */
export function printPlans(plans: RunPlan[], json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify({ type: "plan", workflows: plans })}\n`);
    return;
  }
  const c = painter(process.stdout);
  plans.forEach((plan, i) => {
    if (i > 0) println();
    println(
      `${c.bold(`workflow '${plan.workflow}'`)}: ${plural(plan.tasks.length, "task")}, ${plural(plan.levels.length, "level")}, max parallel ${plan.maxParallel}${plan.failFast ? ", fail fast" : ""}`,
    );
    const rows = [["LEVEL", "TASK", "DEPENDS ON", "RUNS ON"].map((h) => c.bold(h))];
    plan.levels.forEach((names, level) => {
      for (const name of names) {
        const t = plan.tasks.find((x) => x.name === name);
        rows.push([String(level + 1), name, t?.dependsOn.join(", ") || "-", t?.runsOn ?? "local"]);
      }
    });
    println(table(rows));
  });
}
