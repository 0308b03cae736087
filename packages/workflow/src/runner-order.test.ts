import { describe, expect, test } from "vitest";
import {
  defineWorkflow,
  type RunEvent,
  type RunOptions,
  runWorkflow,
  type WorkflowInput,
} from "./index.js";

async function run(input: WorkflowInput, options: RunOptions = {}) {
  const events: RunEvent[] = [];
  const handle = runWorkflow(defineWorkflow(input), { ...options, onEvent: (e) => events.push(e) });
  const result = await handle.result;
  return { result, events, handle };
}

const ok =
  (output: Record<string, string> = {}) =>
  async () => ({ ok: true, output });

describe("ordering and outputs", () => {
  test("a diamond runs dependencies first and passes outputs down", async () => {
    const { result, events } = await run({
      name: "diamond",
      tasks: [
        {
          name: "d",
          dependsOn: ["b", "c"],
          command: async (ctx) => ({
            ok: true,
            output: { sum: `${ctx.deps.b?.v}+${ctx.deps.c?.v}` },
          }),
        },
        {
          name: "b",
          dependsOn: ["a"],
          command: async (ctx) => ({ ok: true, output: { v: `b(${ctx.deps.a?.v})` } }),
        },
        { name: "c", dependsOn: ["a"], command: "printf c" },
        { name: "a", command: ok({ v: "a" }) },
      ],
    });
    expect(result.status).toBe("succeeded");
    const order = events.filter((e) => e.type === "task.succeeded").map((e) => e.task);
    expect(order[0]).toBe("a");
    expect(order[3]).toBe("d");
    expect(result.tasks.map((t) => t.name)).toEqual(["d", "b", "c", "a"]);
    expect(result.tasks[0]?.output).toEqual({ sum: "b(a)+undefined" });
    expect(result.tasks[2]?.output).toEqual({ stdout: "c", stderr: "", exit_code: 0 });
    expect(events[0]?.type).toBe("workflow.started");
    expect(events.at(-1)?.type).toBe("workflow.completed");
  });

  test("a failed task skips its dependents with the reason, others still run", async () => {
    const { result, events } = await run({
      name: "f",
      tasks: [
        { name: "bad", command: "echo oops >&2; exit 3" },
        { name: "child", dependsOn: ["bad"], command: ok() },
        { name: "grandchild", dependsOn: ["child"], command: ok() },
        { name: "other", command: ok() },
      ],
    });
    expect(result.status).toBe("failed");
    expect(result.message).toBe("task 'bad' failed");
    const byName = Object.fromEntries(result.tasks.map((t) => [t.name, t]));
    expect(byName.bad?.message).toBe("command exited with code 3: oops");
    expect(byName.bad?.output).toEqual({ stdout: "", stderr: "oops\n", exit_code: 3 });
    expect(byName.child).toMatchObject({ status: "skipped", message: "dependency 'bad' failed" });
    expect(byName.grandchild).toMatchObject({
      status: "skipped",
      message: "dependency 'child' was skipped",
    });
    expect(byName.other?.status).toBe("succeeded");
    expect(events.some((e) => e.type === "task.skipped" && e.task === "child")).toBe(true);
    expect(result.counts).toEqual({ succeeded: 1, failed: 1, skipped: 2, cancelled: 0 });
  });

  test("run_if false skips a task and its dependents still run without its output", async () => {
    const { result } = await run({
      name: "cond",
      tasks: [
        { name: "never", runIf: { kind: "shell", script: "test 1 = 2" }, command: ok({ x: "1" }) },
        { name: "fn-no", runIf: { kind: "function", fn: async () => false }, command: ok() },
        { name: "yes", runIf: { kind: "shell", script: "true" }, command: ok({ y: "1" }) },
        {
          name: "after",
          dependsOn: ["never", "yes"],
          command: async (ctx) => ({ ok: true, output: { deps: Object.keys(ctx.deps).join(",") } }),
        },
      ],
    });
    expect(result.status).toBe("succeeded");
    expect(result.tasks.map((t) => t.status)).toEqual([
      "skipped",
      "skipped",
      "succeeded",
      "succeeded",
    ]);
    expect(result.tasks[0]?.message).toBe("run_if is false");
    expect(result.tasks[3]?.output).toEqual({ deps: "yes" });
  });

  test("params merge task params, run params and the built-ins; values are passed", async () => {
    let seen: unknown;
    const { result } = await run(
      {
        name: "pv",
        baseDir: "/tmp",
        tasks: [
          {
            name: "t",
            params: { a: "task", b: "task" },
            command: async (ctx) => {
              seen = { params: ctx.params, values: ctx.values, workdir: ctx.workdir };
              return { ok: true };
            },
          },
        ],
      },
      { params: { b: "cli" }, values: { env: "prod" } },
    );
    expect(result.status).toBe("succeeded");
    expect(seen).toEqual({
      params: { a: "task", b: "cli", task_name: "t", workflow: "pv", workdir: "/tmp" },
      values: { env: "prod" },
      workdir: "/tmp",
    });
  });

  test("a thrown error or non-ok outcome fails the task with its message", async () => {
    const { result } = await run({
      name: "e",
      tasks: [
        {
          name: "throws",
          command: async () => {
            throw new Error("boom");
          },
        },
        { name: "says-no", command: async () => ({ ok: false, message: "not today" }) },
      ],
    });
    expect(result.tasks.map((t) => [t.status, t.message])).toEqual([
      ["failed", "boom"],
      ["failed", "not today"],
    ]);
    expect(result.message).toBe("tasks 'throws', 'says-no' failed");
  });

  test("completed tasks (resuming a run) are not run and feed their outputs to dependents", async () => {
    let ran = false;
    const { result, events } = await run(
      {
        name: "resume",
        tasks: [
          {
            name: "a",
            command: async () => {
              ran = true;
              return { ok: true };
            },
          },
          {
            name: "b",
            dependsOn: ["a"],
            command: async (ctx) => ({ ok: true, output: { got: String(ctx.deps.a?.v) } }),
          },
        ],
      },
      { completed: { a: { v: "earlier" } } },
    );
    expect(ran).toBe(false);
    expect(result.tasks[0]).toMatchObject({
      status: "succeeded",
      attempts: 0,
      message: "done in an earlier run",
    });
    expect(result.tasks[1]?.output).toEqual({ got: "earlier" });
    expect(events.find((e) => e.type === "task.succeeded")).toMatchObject({
      task: "a",
      attempts: 0,
    });
  });

  test("a throwing event listener is logged and does not stop the run", async () => {
    const errors: string[] = [];
    const noop = () => {};
    const logger = {
      debug: noop,
      info: noop,
      warn: noop,
      error: (o: object) => errors.push(JSON.stringify(o)),
    };
    const handle = runWorkflow(
      defineWorkflow({ name: "l", tasks: [{ name: "a", command: "true" }] }),
      {
        logger,
        onEvent: (e) => {
          if (e.type === "task.started") throw new Error("display broke");
        },
      },
    );
    expect((await handle.result).status).toBe("succeeded");
    expect(errors).toEqual(['{"event":"task.started","error":"display broke"}']);
  });

  test("a delegated task fails at once, naming the task and its target", async () => {
    const started = Date.now();
    const { result } = await run({
      name: "d",
      tasks: [
        {
          name: "x",
          delegateTo: { target: { kind: "agent", name: "y" } },
          retries: 3,
          command: "true",
        },
      ],
    });
    expect(result.tasks[0]).toMatchObject({
      status: "failed",
      attempts: 1,
      message: "task 'x' is delegated to agent 'y': delegation is not available yet",
    });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  test("a delegate executor runs delegated tasks", async () => {
    const { result } = await run(
      {
        name: "d",
        tasks: [{ name: "x", delegateTo: { target: { kind: "address", address: "h:1" } } }],
      },
      { delegate: async (task) => ({ ok: true, output: { ran: task.name } }) },
    );
    expect(result.tasks[0]?.output).toEqual({ ran: "x" });
  });

  test("the result and final event name the agents of the last attempt, none when it ran here", async () => {
    const seen: number[] = [];
    const { result, events } = await run(
      {
        name: "d",
        tasks: [
          // Fails on web-1, then succeeds on web-2.
          {
            name: "moved",
            delegateTo: { target: { kind: "labels", labels: { role: "web" } } },
            retries: 1,
            retryDelayMs: 1,
          },
          // Placed on an agent, then falls back here on its retry.
          {
            name: "back",
            delegateTo: { target: { kind: "agent", name: "db" }, fallback: "local" },
            retries: 1,
            retryDelayMs: 1,
            command: "true",
          },
          { name: "local", command: "true" },
        ],
      },
      {
        delegate: async (task, ctx) => {
          seen.push(ctx.attempt);
          if (task.name === "moved") {
            ctx.placed?.([ctx.attempt === 1 ? "web-1" : "web-2"]);
            return ctx.attempt === 1 ? { ok: false, message: "agent lost" } : { ok: true };
          }
          if (ctx.attempt === 1) {
            ctx.placed?.(["db"]);
            return { ok: false, message: "agent lost" };
          }
          return undefined;
        },
      },
    );
    const byName = Object.fromEntries(result.tasks.map((t) => [t.name, t]));
    expect(byName.moved).toMatchObject({ status: "succeeded", attempts: 2, agents: ["web-2"] });
    expect(byName.back).toMatchObject({ status: "succeeded", attempts: 2 });
    expect(byName.back?.agents).toBeUndefined();
    expect(byName.local?.agents).toBeUndefined();
    const final = (name: string) =>
      events.find(
        (e) => (e.type === "task.succeeded" || e.type === "task.failed") && e.task === name,
      );
    expect(final("moved")).toMatchObject({ type: "task.succeeded", agents: ["web-2"] });
    expect(final("back")).not.toHaveProperty("agents");
    expect(final("local")).not.toHaveProperty("agents");
    expect(seen.length).toBe(4);
  });
});
