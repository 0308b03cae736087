import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import {
  defineWorkflow,
  isWorkflowError,
  planRun,
  runWorkflow,
  selectTasks,
  type TaskHook,
  type WorkflowInput,
} from "./index.js";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-wf-"));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("hooks", () => {
  test("run in the documented order", async () => {
    const calls: string[] = [];
    const hook =
      (name: string): TaskHook =>
      async (ctx, outcome) => {
        // Hooks after a timeout still get a live signal (Lua hooks honour it).
        const dead = ctx.signal.aborted ? " with an aborted signal" : "";
        calls.push(`${outcome ? `${name}(${outcome.ok})` : name}${dead}`);
      };
    const taskHooks = {
      pre: hook("pre"),
      post: hook("post"),
      onSuccess: hook("on_success"),
      onFailure: hook("on_failure"),
      onTimeout: hook("on_timeout"),
    };
    const model = defineWorkflow({
      name: "h",
      baseDir: dir,
      tasks: [
        {
          name: "a",
          hooks: taskHooks,
          command: async () => {
            calls.push("a");
            return { ok: true, output: { n: 1 } };
          },
        },
        { name: "b", dependsOn: ["a"], hooks: taskHooks, timeoutMs: 50, command: "sleep 5" },
      ],
      hooks: {
        onStart: async () => void calls.push("on_start"),
        onTaskStart: async (name) => void calls.push(`on_task_start ${name}`),
        onTaskComplete: async (name, success, output) =>
          void calls.push(`on_task_complete ${name} ${success} ${JSON.stringify(output ?? null)}`),
        onComplete: async (success, results) =>
          void calls.push(`on_complete ${success} ${Object.keys(results)}`),
      },
    });
    const result = await runWorkflow(model).result;
    expect(result.status).toBe("failed");
    expect(calls).toEqual([
      "on_start",
      "on_task_start a",
      "pre",
      "a",
      "on_success(true)",
      "post(true)",
      'on_task_complete a true {"n":1}',
      "on_task_start b",
      "pre",
      "on_timeout(false)",
      "on_failure(false)",
      "post(false)",
      "on_task_complete b false null",
      "on_complete false a",
    ]);
  });

  test("workflow hooks write to the run as workflow.log events", async () => {
    const model = defineWorkflow({
      name: "hooked",
      baseDir: dir,
      tasks: [{ name: "a", command: "true" }],
      hooks: {
        onStart: async (log) => log?.write("log", "INFO begin\n"),
        onTaskStart: async (name, log) => log?.write("stdout", `start ${name}\n`),
        onComplete: async (ok, _results, log) => log?.write("log", `INFO end ${ok}\n`),
      },
    });
    const seen: string[] = [];
    await runWorkflow(model, {
      onEvent: (e) => {
        if (e.type === "workflow.log") seen.push(`${e.workflow} ${e.stream} ${e.text}`);
      },
    }).result;
    expect(seen).toEqual([
      "hooked log INFO begin\n",
      "hooked stdout start a\n",
      "hooked log INFO end true\n",
    ]);
  });

  test("a failing pre_hook fails the task; a failing post_hook is logged only", async () => {
    const logs: string[] = [];
    const model = defineWorkflow({
      name: "h",
      baseDir: dir,
      tasks: [
        { name: "a", hooks: { pre: async () => Promise.reject(new Error("no")) }, command: "true" },
        {
          name: "b",
          hooks: { post: async () => Promise.reject(new Error("meh")) },
          command: "true",
        },
      ],
    });
    const result = await runWorkflow(model, {
      onEvent: (e) => e.type === "task.log" && logs.push(`${e.task}: ${e.text}`),
    }).result;
    expect(result.tasks.map((t) => [t.status, t.message])).toEqual([
      ["failed", "pre_hook failed: no"],
      ["succeeded", undefined],
    ]);
    expect(logs).toEqual(["b: post_hook failed: meh\n"]);
  });
});

describe("artifacts", () => {
  test("are saved per task and copied into a consumer's workdir", async () => {
    const dataDir = path.join(dir, "data");
    const model = defineWorkflow({
      name: "art",
      baseDir: dir,
      tasks: [
        {
          name: "build",
          workdir: "build",
          command: "mkdir -p out && echo bin > out/app.bin",
          artifacts: ["out/*.bin"],
        },
        {
          name: "ship",
          workdir: "ship",
          dependsOn: ["build"],
          consumes: ["build:out/app.bin"],
          command: "cat out/app.bin",
        },
        {
          name: "bare",
          workdir: "bare",
          dependsOn: ["build"],
          consumes: ["out/app.bin"],
          command: "cat out/app.bin",
        },
      ],
    });
    const result = await runWorkflow(model, { dataDir, runId: "r1" }).result;
    expect(result.status).toBe("succeeded");
    expect(fs.readFileSync(path.join(dataDir, "runs/r1/artifacts/build/out/app.bin"), "utf8")).toBe(
      "bin\n",
    );
    expect(result.tasks[1]?.output?.stdout).toBe("bin\n");
    expect(result.tasks[2]?.output?.stdout).toBe("bin\n");
  });

  test("a missing artifact fails the task", async () => {
    const model = defineWorkflow({
      name: "art",
      baseDir: dir,
      tasks: [
        { name: "p", command: "true", artifacts: ["nothing.txt"] },
        { name: "c", consumes: ["ghost:file"], command: "true" },
      ],
    });
    const result = await runWorkflow(model, { dataDir: dir }).result;
    expect(result.tasks.map((t) => t.message)).toEqual([
      `artifact 'nothing.txt' not found in ${dir}`,
      "artifact 'ghost:file' not found in task 'ghost' (none was saved)",
    ]);
  });

  test("a consumed artifact that is not there lists what the producer saved", async () => {
    const model = defineWorkflow({
      name: "art2",
      baseDir: dir,
      tasks: [
        {
          name: "producer",
          command: "mkdir -p dist && echo x > dist/app.tgz && echo y > notes.txt",
          artifacts: ["dist/app.tgz", "notes.txt"],
        },
        { name: "c", dependsOn: ["producer"], consumes: ["producer:app.tgz"], command: "true" },
      ],
    });
    const result = await runWorkflow(model, { dataDir: dir }).result;
    expect(result.tasks[1]?.message).toBe(
      "artifact 'producer:app.tgz' not found in task 'producer' (saved: dist/app.tgz, notes.txt)",
    );
  });
});

describe("validation", () => {
  const wf = (tasks: WorkflowInput["tasks"], config: WorkflowInput["config"] = {}) =>
    defineWorkflow({ name: "v", tasks, config });
  const thrown = (fn: () => unknown): unknown => {
    try {
      fn();
    } catch (e) {
      return e;
    }
    throw new Error("did not throw");
  };

  test("an unknown dependency is an error naming it", () => {
    const e = thrown(() => runWorkflow(wf([{ name: "a", dependsOn: ["nope"] }])));
    expect(isWorkflowError(e, "SLOTH_WORKFLOW_UNKNOWN_DEPENDENCY")).toBe(true);
    expect((e as Error).message).toBe(
      "cannot run workflow 'v': task 'a' depends on unknown task 'nope'",
    );
  });

  test("a cycle is an error naming it", () => {
    const tasks = [
      { name: "a", dependsOn: ["c"] },
      { name: "b", dependsOn: ["a"] },
      { name: "c", dependsOn: ["b"] },
      { name: "d" },
    ];
    const e = thrown(() => runWorkflow(wf(tasks)));
    expect(isWorkflowError(e, "SLOTH_WORKFLOW_CYCLE")).toBe(true);
    expect((e as Error).message).toBe("cannot run workflow 'v': dependency cycle a -> c -> b -> a");
    expect(
      (thrown(() => planRun(wf([{ name: "s", dependsOn: ["s"] }]))) as Error).message,
    ).toContain("s -> s");
  });

  test("duplicate names and stack keys stop the run before it starts", () => {
    expect((thrown(() => runWorkflow(wf([{ name: "a" }, { name: "a" }]))) as Error).message).toBe(
      "cannot run workflow 'v': task 'a' is defined twice",
    );
    const e = thrown(() =>
      runWorkflow(wf([{ name: "a" }], { requireLock: true, onFailure: "rollback" })),
    );
    expect(isWorkflowError(e, "SLOTH_WORKFLOW_NEEDS_STACKS")).toBe(true);
    expect((e as Error).message).toBe(
      `cannot run workflow 'v': require_lock, on_failure = "rollback" need a stack`,
    );
    // A run deploying a stack takes them (its caller carries them out).
    const ok = runWorkflow(wf([{ name: "a" }], { requireLock: true, onFailure: "rollback" }), {
      stack: "prod",
    });
    ok.cancel();
  });

  test("planRun gives levels and where each task runs; selectTasks keeps dependencies", () => {
    const model = wf([
      { name: "a" },
      { name: "b", dependsOn: ["a"] },
      { name: "c", dependsOn: ["a"], delegateTo: { target: { kind: "agent", name: "web" } } },
      { name: "d", dependsOn: ["b", "c"] },
      {
        name: "e",
        delegateTo: { target: { kind: "labels", labels: { role: "db" } }, fallback: "local" },
      },
    ]);
    const plan = planRun(model);
    expect(plan.levels).toEqual([["a", "e"], ["b", "c"], ["d"]]);
    expect(plan.tasks.map((t) => t.runsOn)).toEqual([
      "local",
      "local",
      "agent 'web'",
      "local",
      "an agent labelled role=db, else here",
    ]);
    expect(selectTasks(model, ["b"]).tasks.map((t) => t.name)).toEqual(["a", "b"]);
    expect(
      isWorkflowError(
        thrown(() => selectTasks(model, ["zz"])),
        "SLOTH_WORKFLOW_UNKNOWN_TASK",
      ),
    ).toBe(true);
  });
});
