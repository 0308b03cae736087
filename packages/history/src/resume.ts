import type { TaskOutput } from "@sloth/workflow";
import type { RunDetail } from "./types.js";

/** What a resumed run reuses and what it runs again. */
export interface ResumePlan {
  /**
   * Tasks that succeeded (or were reused) in the earlier run, with their
   * outputs (undefined when a task succeeded without one): pass it as the
   * runner's `completed` option.
   */
  completed: Record<string, TaskOutput | undefined>;
  /** Tasks that failed, were cancelled, skipped, interrupted or never ran. */
  rerun: string[];
}

/** Splits a recorded run's tasks into those to reuse and those to run again. */
export function planResume(run: RunDetail): ResumePlan {
  const completed: Record<string, TaskOutput | undefined> = {};
  const rerun: string[] = [];
  for (const t of run.tasks) {
    if (t.status === "succeeded") completed[t.name] = t.output;
    else rerun.push(t.name);
  }
  return { completed, rerun };
}
