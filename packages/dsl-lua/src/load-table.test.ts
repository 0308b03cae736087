import { readFileSync } from "node:fs";
import { runWorkflow } from "@sloth/workflow";
import { afterAll, describe, expect, it } from "vitest";
import { isSlothError } from "./index.js";
import { shutdownLuaWorkers } from "./pool.js";
import { loadFile, runCommand, tempDir } from "./test-helpers.js";

const tmp = tempDir();
afterAll(async () => {
  tmp.cleanup();
  await shutdownLuaWorkers();
});

const fixture = (name: string) =>
  readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8");

async function loadError(name: string, text: string): Promise<Error & { code: string }> {
  const err = await loadFile(tmp.write(name, text)).catch((e: unknown) => e);
  if (!isSlothError(err)) throw new Error(`expected a Sloth error, got ${String(err)}`);
  return err;
}

describe("seed 004 examples, verbatim", () => {
  it("example 1: group-level delegate_to is inherited, with the Modern DSLs notice", async () => {
    const file = tmp.write("seed1.sloth", fixture("seed-004-example-1.sloth"));
    const r = await loadFile(file);
    expect(r.notices).toHaveLength(1);
    expect(r.notices[0]).toMatch(
      /seed1\.sloth:1: 'Modern DSLs' is not valid Lua; read as TaskDefinitions$/,
    );
    expect(r.workflows).toEqual([]);
    expect(r.groups.map((g) => g.name)).toEqual(["my_distributed_group"]);
    const g = r.groups[0]!;
    expect(g.description).toBe("A task group with distributed tasks.");
    const t = g.tasks[0]!;
    expect(t).toMatchObject({
      name: "remote_hello",
      group: "my_distributed_group",
      description: "Runs a hello world task on a remote agent.",
    });
    expect(t.delegateTo).toEqual({ target: { kind: "address", address: "localhost:50051" } });
    expect(t.source).toEqual({ file: expect.stringMatching(/seed1\.sloth$/), line: 7 });
    const out = await runCommand(t);
    expect(out).toMatchObject({ ok: true, message: "Remote task executed." });
    expect(out.log).toBe("INFO Hello from remote agent!\n");
  });

  it("example 2: a task-level delegate_to and a local shell task that runs", async () => {
    const file = tmp.write("seed2.sloth", fixture("seed-004-example-2.sloth"));
    const r = await loadFile(file);
    const [remote, local] = r.groups[0]!.tasks;
    expect(remote?.delegateTo).toEqual({
      target: { kind: "address", address: "192.168.1.100:50051" },
    });
    expect(local).toMatchObject({
      name: "local_task",
      command: { kind: "shell", script: "echo 'Hello from local machine!'" },
    });
    expect(local?.delegateTo).toBeUndefined();
    const only = { ...r.groups[0]!, tasks: [local!] };
    const result = await runWorkflow(only).result;
    expect(result.status).toBe("succeeded");
    expect(result.tasks[0]?.output).toMatchObject({
      stdout: "Hello from local machine!\n",
      exit_code: 0,
    });
  });
});

describe("table form", () => {
  it("keeps groups and keyed tasks in declaration order, inheriting workdir and delegate_to", async () => {
    const file = tmp.write(
      "order.sloth",
      `-- zeta comes first in the file, alpha last
TaskDefinitions = {
  zeta = {
    workdir = "/srv/zeta",
    delegate_to = { "web-1", "web-2", fallback = "local" },
    tasks = {
      zulu = { command = "echo z" },
      ["mike"] = { command = "echo m", depends_on = { "zulu" } },
      alpha = { command = "echo a", workdir = "/own", delegate_to = "solo" },
    },
  },
  alpha = {
    tasks = {
      { name = "one", command = "true" },
      { name = "two", command = "true" },
    },
  },
}
`,
    );
    const r = await loadFile(file);
    expect(r.groups.map((g) => g.name)).toEqual(["zeta", "alpha"]);
    const zeta = r.groups[0]!;
    expect(zeta.tasks.map((t) => [t.name, t.source?.line])).toEqual([
      ["zulu", 7],
      ["mike", 8],
      ["alpha", 9],
    ]);
    expect(zeta.tasks[0]).toMatchObject({
      workdir: "/srv/zeta",
      delegateTo: { target: { kind: "agents", names: ["web-1", "web-2"] }, fallback: "local" },
    });
    expect(zeta.tasks[2]).toMatchObject({
      workdir: "/own",
      delegateTo: { target: { kind: "agent", name: "solo" } },
    });
    expect(zeta.tasks[1]?.dependsOn).toEqual(["zulu"]);
    expect(r.groups[1]!.tasks.map((t) => [t.name, t.source?.line])).toEqual([
      ["one", 14],
      ["two", 15],
    ]);
    expect(r.notices).toEqual([]);
  });

  it("reads every task field", async () => {
    const file = tmp.write(
      "fields.sloth",
      `TaskDefinitions = { g = { description = "G", version = 2, config = { fail_fast = true }, tasks = {
  { name = "t", description = "D", command = function() end, depends_on = "a", retries = 2,
    retry_strategy = "fixed", retry_delay = "250ms", timeout = 90, params = { n = 1, list = { "x" } },
    tags = { "ci", "fast" }, run_if = "test -f x", abort_if = function() return false end,
    pre_exec = function() end, post_exec = function() end, on_success = function() end,
    on_fail = function() end, on_timeout = function() end, artifacts = "out/*.txt", consumes = { "a:x" } },
  { name = "a", run_if = false },
} } }`,
    );
    const g = (await loadFile(file)).groups[0]!;
    expect(g).toMatchObject({
      description: "G",
      version: "2",
      config: { failFast: true, maxParallelTasks: 4 },
    });
    const t = g.tasks[0]!;
    expect(t).toMatchObject({
      name: "t",
      description: "D",
      dependsOn: ["a"],
      retries: 2,
      retryBackoff: "fixed",
      retryDelayMs: 250,
      timeoutMs: 90_000,
      params: { n: 1, list: ["x"] },
      tags: ["ci", "fast"],
      runIf: { kind: "shell", script: "test -f x" },
      artifacts: ["out/*.txt"],
      consumes: ["a:x"],
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
    expect(g.tasks[1]?.runIf).toEqual({ kind: "shell", script: "false" });
  });

  it("reads workflow.define with a table, keyed tasks and task objects", async () => {
    const file = tmp.write(
      "define.sloth",
      `local built = task("built"):command("echo built")
workflow.define("first", {
  description = "tables",
  tasks = { { name = "a", command = "true" }, built },
})
workflow.define("second", {
  tasks = {
    later = { command = "true", depends_on = "early" },
    early = { command = "true" },
  },
  on_complete = function(success) end,
})
`,
    );
    const r = await loadFile(file);
    expect(r.workflows.map((w) => w.name)).toEqual(["first", "second"]);
    expect(r.workflows[0]!.tasks.map((t) => t.name)).toEqual(["a", "built"]);
    expect(r.workflows[1]!.tasks.map((t) => t.name)).toEqual(["later", "early"]);
    expect(typeof r.workflows[1]!.hooks.onComplete).toBe("function");
  });

  it.each([
    [
      "unknown task field",
      `TaskDefinitions = { g = { tasks = {\n { name = "t", comand = "x" } } } }`,
      /:2: task 't': unknown field 'comand'; valid fields: name, description, command,.*\n\s+2 \| \{ name = "t", comand = "x" \}/,
    ],
    [
      "unknown group field",
      `TaskDefinitions = {\n  g = { task = {} } }`,
      /:2: group 'g': unknown field 'task'; valid fields: description, version, workdir, delegate_to, workspace, tasks, config/,
    ],
    [
      "unknown workflow field",
      `workflow.define("w", { task = {} })`,
      /:1: workflow 'w': unknown field 'task'; valid fields: description, version, tasks, config, on_start/,
    ],
    [
      "bad delegate_to address",
      `TaskDefinitions = { g = { tasks = {\n { name = "t", delegate_to = { address = "nohost" } } } } }`,
      /:2: task 't': delegate_to.address 'nohost' is not host:port/,
    ],
    [
      "bad delegate_to field",
      `TaskDefinitions = {\n g = { delegate_to = { host = "x" }, tasks = {} } }`,
      /group 'g': delegate_to has unknown field 'host'; valid fields: address, agent, agents, labels, all, fallback/,
    ],
    [
      "bad delegate_to fallback",
      `TaskDefinitions = { g = { tasks = {\n { name = "t", delegate_to = { agent = "a", fallback = "remote" } } } } }`,
      /delegate_to.fallback must be "local"/,
    ],
    [
      "bad duration",
      `TaskDefinitions = { g = { tasks = {\n { name = "t", timeout = "soon" } } } }`,
      /:2: task 't': timeout 'soon' is not a duration/,
    ],
    [
      "bad retries",
      `TaskDefinitions = { g = { tasks = {\n { name = "t", retries = -1 } } } }`,
      /retries must be a whole number >= 0, got -1/,
    ],
    [
      "missing name",
      `TaskDefinitions = { g = { tasks = {\n { command = "x" } } } }`,
      /task: needs a name \(a non-empty string\), got nil/,
    ],
    [
      "duplicate task",
      `TaskDefinitions = { g = { tasks = {\n { name = "t" },\n { name = "t" } } } }`,
      /task 't' is declared twice/,
    ],
    [
      "duplicate workflow",
      `workflow.define("w")\nworkflow.define("w")`,
      /:2: workflow 'w' is already defined at line 1/,
    ],
    [
      "alias and canonical",
      `TaskDefinitions = { g = { tasks = {\n { name = "t", on_fail = function() end, on_failure = function() end } } } }`,
      /'on_f\w+' and 'on_failure' both set/,
    ],
    [
      "bad config",
      `workflow.define("w", { config = { max_parallel_tasks = 0 } })`,
      /config max_parallel_tasks must be a whole number >= 1, got 0/,
    ],
    [
      "function in params",
      `TaskDefinitions = { g = { tasks = {\n { name = "t", params = { f = print } } } } }`,
      /params.f must be plain data, got a function/,
    ],
  ])("rejects %s", async (_, text, message) => {
    const err = await loadError("bad.sloth", text);
    expect(err.code).toBe("SLOTH_DSL_INVALID");
    expect(err.message).toMatch(message);
  });

  it("accepts the stack config keys of seed 003 and keeps other keys", async () => {
    const file = tmp.write(
      "stack.sloth",
      `workflow.define("production_deploy", { tasks = {} }):config({
  timeout = "30m", require_lock = true, create_snapshot = true, validate_before = true,
  detect_drift = true, on_failure = "rollback", region = "eu", max_parallel_tasks = 2,
})`,
    );
    const [w] = (await loadFile(file)).workflows;
    expect(w?.config).toEqual({
      timeoutMs: 1_800_000,
      maxParallelTasks: 2,
      failFast: false,
      requireLock: true,
      createSnapshot: true,
      validateBefore: true,
      detectDrift: true,
      onFailure: "rollback",
      extra: { region: "eu" },
    });
  });
});

describe("workspace option", () => {
  it("is read on tasks and inherited from groups, a task's own winning", async () => {
    const r = await loadFile(
      tmp.write(
        "ws.sloth",
        `TaskDefinitions = {
  g = {
    workspace = { exclude = { "node_modules/", "*.log" } },
    tasks = {
      { name = "a", command = "true" },
      { name = "b", command = "true", workspace = { exclude = "dist/" } },
    },
  },
}
`,
      ),
    );
    const tasks = r.groups[0]!.tasks;
    expect(tasks.map((t) => t.workspace)).toEqual([
      { exclude: ["node_modules/", "*.log"] },
      { exclude: ["dist/"] },
    ]);
  });

  it("rejects unknown workspace fields clearly", async () => {
    const err = await loadError(
      "ws-bad.sloth",
      `TaskDefinitions = { g = { workspace = { include = { "x" } }, tasks = { { name = "a", command = "true" } } } }\n`,
    );
    expect(err.message).toContain(
      "group 'g': unknown workspace field 'include'; valid fields: exclude",
    );
  });
});
