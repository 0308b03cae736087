import { describe, expect, it } from "vitest";
import { defineWorkflow, type RunEvent, runWorkflow, type TaskContext } from "./index.js";

// The `completed` option: tasks done in an earlier run are reported, not run,
// and their outputs reach dependents.
describe("runWorkflow: completed tasks", () => {
  it("runs only the rest, feeding it the given outputs", async () => {
    const ran: string[] = [];
    const seen: Record<string, TaskContext["deps"]> = {};
    const fn = (name: string) => async (ctx: TaskContext) => {
      ran.push(name);
      seen[name] = ctx.deps;
      return { ok: true, output: { from: name } };
    };
    const model = defineWorkflow({
      name: "w",
      tasks: [
        { name: "a", command: fn("a") },
        { name: "b", dependsOn: ["a"], command: fn("b") },
        { name: "c", dependsOn: ["a"], command: fn("c") },
        { name: "d", dependsOn: ["b", "c"], command: fn("d") },
      ],
    });
    const events: RunEvent[] = [];
    const run = runWorkflow(model, {
      completed: { a: { from: "earlier a" }, b: undefined, ghost: { x: 1 } },
      onEvent: (e) => events.push(e),
    });
    const result = await run.result;
    expect(result.status).toBe("succeeded");
    expect(ran).toEqual(["c", "d"]);
    expect(seen.c).toEqual({ a: { from: "earlier a" } });
    expect(seen.d).toEqual({ c: { from: "c" } });
    expect(result.tasks.map((t) => [t.name, t.status, t.attempts])).toEqual([
      ["a", "succeeded", 0],
      ["b", "succeeded", 0],
      ["c", "succeeded", 1],
      ["d", "succeeded", 1],
    ]);
    const reused = events.filter((e) => e.type === "task.succeeded" && e.attempts === 0);
    expect(reused.map((e) => ("task" in e ? e.task : ""))).toEqual(["a", "b"]);
    expect(events.findIndex((e) => e.type === "workflow.started")).toBe(0);
  });
});
