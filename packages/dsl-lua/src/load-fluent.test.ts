import { runWorkflow } from "@sloth/workflow";
import { afterAll, describe, expect, it } from "vitest";
import { isSlothError } from "./index.js";
import { shutdownLuaWorkers } from "./pool.js";
import { context, loadFile, tempDir } from "./test-helpers.js";

const tmp = tempDir();
afterAll(async () => {
  tmp.cleanup();
  await shutdownLuaWorkers();
});

async function loadError(text: string): Promise<Error & { code: string }> {
  const err = await loadFile(tmp.write("bad.sloth", text)).catch((e: unknown) => e);
  if (!isSlothError(err)) throw new Error(`expected a Sloth error, got ${String(err)}`);
  return err;
}

describe("fluent form", () => {
  it("applies every task method", async () => {
    const file = tmp.write(
      "all.sloth",
      `local a = task("a"):command("echo a")
local t = task("t" .. a.name)
  :description("D")
  :command(function(params, deps) return true end)
  :depends_on({ a, "b" })
  :depends_on("c")
  :retries(3, "fixed")
  :retry_delay(2)
  :timeout("1h30m")
  :delegate_to({ labels = { role = "web" }, all = true })
  :workdir("sub")
  :params({ level = 2 })
  :tags("x", "y")
  :run_if("true")
  :abort_if(function() return false end)
  :pre_exec(function() end)
  :post_exec(function() end)
  :on_success(function() end)
  :on_fail(function() end)
  :on_timeout(function() end)
  :artifacts({ "dist/app.tgz" })
  :consumes("a:x.txt", "b:y.txt")
  :build()
workflow.define("w"):tasks({ a, t })
`,
    );
    const [w] = (await loadFile(file)).workflows;
    const t = w!.tasks[1]!;
    expect(t).toMatchObject({
      name: "ta",
      description: "D",
      dependsOn: ["a", "b", "c"],
      retries: 3,
      retryBackoff: "fixed",
      retryDelayMs: 2000,
      timeoutMs: 5_400_000,
      workdir: "sub",
      params: { level: 2 },
      tags: ["x", "y"],
      delegateTo: { target: { kind: "labels", labels: { role: "web" }, all: true } },
      runIf: { kind: "shell", script: "true" },
      artifacts: ["dist/app.tgz"],
      consumes: ["a:x.txt", "b:y.txt"],
      source: { file: expect.stringMatching(/all\.sloth$/), line: 2 },
    });
    expect(t.command?.kind).toBe("function");
    expect(t.abortIf?.kind).toBe("function");
    expect(Object.keys(t.hooks).sort()).toEqual([
      "onFailure",
      "onSuccess",
      "onTimeout",
      "post",
      "pre",
    ]);
    expect(w!.tasks[0]).toMatchObject({
      name: "a",
      command: { kind: "shell", script: "echo a" },
      retries: 0,
      retryBackoff: "exponential",
    });
  });

  it("registers a workflow without :on_complete and applies every workflow method", async () => {
    const file = tmp.write(
      "wf.sloth",
      `local a = task("a"):command("true")
local b = task("b"):command("true")
local c = task("c"):command("true"):depends_on(a)
workflow.define("plain"):tasks({ a })
workflow.define("full")
  :description("Full")
  :version("2.0.0")
  :tasks({ a, parallel({ b, c }) })
  :config({ timeout = 60, max_parallel_tasks = 8, fail_fast = true })
  :on_start(function() end)
  :on_task_start(function(name) end)
  :on_task_complete(function(name, success, output) end)
  :on_complete(function(success, results) end)
`,
    );
    const r = await loadFile(file);
    expect(r.workflows.map((w) => w.name)).toEqual(["plain", "full"]);
    const full = r.workflows[1]!;
    expect(full).toMatchObject({
      description: "Full",
      version: "2.0.0",
      config: { timeoutMs: 60_000, maxParallelTasks: 8, failFast: true },
    });
    expect(full.tasks.map((t) => t.name)).toEqual(["a", "b", "c"]);
    expect(Object.keys(full.hooks).filter((k) => full.hooks[k as keyof typeof full.hooks])).toEqual(
      ["onStart", "onTaskStart", "onTaskComplete", "onComplete"],
    );
    expect(r.workflows[0]!.hooks.onComplete).toBeUndefined();
  });

  it("runs hooks and conditions in the worker with their arguments", async () => {
    const marks = tmp.write("marks.txt", "");
    const file = tmp.write(
      "hooks.sloth",
      `local function mark(s) fs.append(${JSON.stringify(marks)}, s .. "\\n") end
local t = task("t")
  :command(function() return true, "done", { v = 1 } end)
  :run_if(function(params, deps) return params.go == "yes" end)
  :pre_hook(function(params) mark("pre " .. params.task_name) end)
  :post_hook(function(params, deps, result) mark("post " .. tostring(result.success) .. " " .. result.message .. " " .. result.output.v) end)
workflow.define("w"):tasks({ t })
  :on_task_complete(function(name, success, output) mark("complete " .. name .. " " .. tostring(success) .. " " .. output.v) end)
`,
    );
    const [w] = (await loadFile(file)).workflows;
    const t = w!.tasks[0]!;
    const yes = context(t, { params: { go: "yes" } });
    if (t.runIf?.kind !== "function") throw new Error("expected a function condition");
    expect(await t.runIf.fn(yes)).toBe(true);
    expect(await t.runIf.fn(context(t, { params: { go: "no" } }))).toBe(false);
    await t.hooks.pre?.(yes);
    await t.hooks.post?.(yes, { ok: true, message: "done", output: { v: 1 } });
    await w!.hooks.onTaskComplete?.("t", true, { v: 1 });
    const { readFileSync } = await import("node:fs");
    expect(readFileSync(marks, "utf8")).toBe("pre t\npost true done 1\ncomplete t true 1\n");
  });

  it("a hook that returns false, with or without a reason, says no as an error() would", async () => {
    const ran = tmp.write("ran.txt", "");
    const file = tmp.write(
      "no.sloth",
      `workflow.define("w"):tasks({
  task("guarded"):pre_hook(function() return false, "pre says no" end)
    :command(function() fs.append(${JSON.stringify(ran)}, "ran\\n") return true end),
  task("plain"):pre_hook(function() return false end):command("true"),
  task("fine"):pre_hook(function() return nil end):command("true"),
})
workflow.define("w2"):tasks({ task("t"):command("true") })
  :on_start(function() return false, "not allowed today" end)
`,
    );
    const [w, w2] = (await loadFile(file)).workflows;
    const r = await runWorkflow(w!).result;
    const by = Object.fromEntries(r.tasks.map((t) => [t.name, t]));
    expect(by.guarded).toMatchObject({ status: "failed" });
    expect(by.guarded?.message).toContain("pre says no");
    expect(by.plain?.message).toContain("the hook returned false");
    expect(by.fine?.status).toBe("succeeded");
    const { readFileSync } = await import("node:fs");
    expect(readFileSync(ran, "utf8")).toBe("");
    const r2 = await runWorkflow(w2!).result;
    expect(r2.status).toBe("failed");
    expect(r2.message).toContain("not allowed today");
  });

  it("names a nil entry of :tasks({ ... }) (a misspelt variable) instead of dropping it", async () => {
    const err = await loadError(`local build = task("build"):command("true")
local deploy = task("deploy"):command("true")
workflow.define("ci"):tasks({ build, tset, deploy })`);
    expect(err.code).toBe("SLOTH_DSL_INVALID");
    expect(err.message).toMatch(
      /bad\.sloth:3: workflow 'ci': entry 2 of its tasks is nil \(an undefined variable\?/,
    );
  });

  it("tells about a task that no workflow lists (a misspelt variable at the end of the list)", async () => {
    const loaded = await loadFile(
      tmp.write(
        "unused.sloth",
        `local build = task("build"):command("true")
local test = task("test"):command("true")
workflow.define("ci"):tasks({ build, tset })`,
      ),
    );
    expect(loaded.workflows[0]?.tasks.map((t) => t.name)).toEqual(["build"]);
    expect(loaded.notices).toHaveLength(1);
    expect(loaded.notices[0]).toMatch(
      /unused\.sloth:2: task 'test' is defined but no workflow lists it in :tasks\(\{ \.\.\. \}\), so it never runs$/,
    );
  });

  it("rejects tasks depending on each other inside one parallel() group", async () => {
    const err = await loadError(`local a = task("a")
local b = task("b"):depends_on(a)
workflow.define("w"):tasks({ parallel({ a, b }) })`);
    expect(err.message).toMatch(/:3: task 'b' depends on 'a' inside the same parallel\(\) group/);
  });

  it.each([
    [
      "unknown task method",
      `local t = task("t")\n  :descripton("x")`,
      "SLOTH_LUA_RUNTIME",
      /bad\.sloth:2: unknown task method 'descripton' on task 't'; valid methods: abort_if, artifacts, build, command, consumes, delegate_to, depends_on, description, .* \(aliases: on_fail, post_exec, pre_exec\)\n\s+2 \| :descripton\("x"\)/,
    ],
    [
      "unknown workflow method",
      `workflow.define("w")\n  :task({})`,
      "SLOTH_LUA_RUNTIME",
      /bad\.sloth:2: unknown workflow method 'task' on workflow 'w'; valid methods: config, description, on_complete, on_start, on_task_complete, on_task_start, tasks, version/,
    ],
    [
      "a single task where a list is expected",
      `local a = task("a"):command("true")\nworkflow.define("w"):tasks(a)`,
      "SLOTH_DSL_INVALID",
      /bad\.sloth:2: workflow 'w': tasks must be a list of tasks, got a single task; wrap it in braces: :tasks\(\{ t \}\)/,
    ],
    [
      "wrong argument type",
      `task("t"):retries("many")`,
      "SLOTH_LUA_RUNTIME",
      /bad\.sloth:1: :retries\(\) expects number, got string/,
    ],
    [
      "bad retry strategy",
      `workflow.define("w"):tasks({ task("t"):retries(2, "linear") })`,
      "SLOTH_DSL_INVALID",
      /task 't': retry strategy must be "exponential" or "fixed", got "linear"/,
    ],
    [
      "setting a field on a task",
      `local t = task("t")\nt.command = "x"`,
      "SLOTH_LUA_RUNTIME",
      /bad\.sloth:2: cannot set 'command' on task 't': use its methods/,
    ],
    ["a task without a name", `task()`, "SLOTH_LUA_RUNTIME", /task\(\) expects a non-empty name/],
    [
      "bad delegate_to list",
      `workflow.define("w"):tasks({ task("t"):delegate_to({ "", "b" }) })`,
      "SLOTH_DSL_INVALID",
      /delegate_to agent name must be a non-empty string, got ""/,
    ],
    [
      "mixed delegate_to",
      `workflow.define("w"):tasks({ task("t"):delegate_to({ address = "a:1", agent = "b" }) })`,
      "SLOTH_DSL_INVALID",
      /delegate_to mixes address and agent; use one/,
    ],
  ])("rejects %s", async (_, text, code, message) => {
    const err = await loadError(text);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });
});
