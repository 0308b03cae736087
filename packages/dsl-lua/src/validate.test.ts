import { afterAll, expect, it } from "vitest";
import { loadWorkflowFile, validate } from "./index.js";
import { shutdownLuaWorkers } from "./pool.js";
import { tempDir } from "./test-helpers.js";

const tmp = tempDir();
afterAll(async () => {
  tmp.cleanup();
  await shutdownLuaWorkers();
});

it("validate reports unknown dependencies and load errors without throwing", async () => {
  const good = await validate(
    tmp.write(
      "good.sloth",
      `workflow.define("w"):tasks({ task("a"):command("true"), task("b"):depends_on("a"):command("true") })`,
    ),
  );
  expect(good).toMatchObject({ ok: true, problems: [], notices: [] });

  // Notices: a task that does nothing, a config key that looks misspelled.
  const noticed = await validate(
    tmp.write(
      "noticed.sloth",
      `workflow.define("w"):config({ max_parallel = 2, team = "ops" }):tasks({ task("idle") })`,
    ),
  );
  expect(noticed.ok).toBe(true);
  expect(noticed.notices).toEqual([
    expect.stringMatching(
      /noticed\.sloth:1: workflow 'w': config key 'max_parallel' is not one the runner reads; did you mean 'max_parallel_tasks'\?/,
    ),
    expect.stringMatching(
      /noticed\.sloth:1: task 'idle' has no command: it succeeds without doing anything$/,
    ),
  ]);
  expect(good.loaded?.workflows[0]?.tasks.map((t) => t.name)).toEqual(["a", "b"]);

  const missing = await validate(
    tmp.write("missing.sloth", `workflow.define("w"):tasks({\n  task("b"):depends_on("nope") })`),
  );
  expect(missing.ok).toBe(false);
  expect(missing.problems).toEqual([
    {
      code: "SLOTH_DSL_INVALID",
      message: expect.stringMatching(
        /missing\.sloth:2: task 'b' depends on unknown task 'nope' in 'w'$/,
      ),
      file: expect.stringMatching(/missing\.sloth$/),
      line: 2,
    },
  ]);

  const cycle = await validate(
    tmp.write(
      "cycle.sloth",
      `workflow.define("w"):tasks({\n  task("a"):depends_on("b"),\n  task("b"):depends_on("a") })`,
    ),
  );
  expect(cycle.problems.map((p) => p.message)).toEqual([
    expect.stringMatching(/cycle\.sloth:2: dependency cycle a -> b -> a in 'w'$/),
  ]);

  const broken = await validate(tmp.write("broken.sloth", "local = 1"));
  expect(broken).toMatchObject({ ok: false, problems: [{ code: "SLOTH_LUA_SYNTAX", line: 1 }] });
});

it("sends top-level output, notices and workflow-hook output to the logger, log lines at their level", async () => {
  const seen: Array<[string, unknown, string | undefined]> = [];
  const record = (level: string) => (obj: unknown, msg?: string) => {
    seen.push([level, obj, msg]);
  };
  const logger = {
    debug: record("debug"),
    info: record("info"),
    warn: record("warn"),
    error: record("error"),
  };
  const file = tmp.write(
    "logged.sloth",
    `print("loading")
Modern DSLs = { g = { tasks = {} } }
workflow.define("w"):on_start(function() log.info("starting"); log.warn("careful\\nnow") end)`,
  );
  const loaded = await loadWorkflowFile(file, { logger });
  await loaded.workflows[0]?.hooks.onStart?.();
  // Notices are returned for the caller to show, not logged as well.
  expect(loaded.notices).toEqual([
    expect.stringMatching(
      /logged\.sloth:2: 'Modern DSLs' is not valid Lua; read as TaskDefinitions/,
    ),
  ]);
  expect(seen.map(([level, , msg]) => [level, msg])).toEqual([
    ["info", "loading"],
    ["info", "starting"],
    ["warn", "careful\nnow"],
  ]);
  // Given a log (as the engine gives one, for workflow.log events), the hook writes there.
  const written: string[] = [];
  await loaded.workflows[0]?.hooks.onStart?.({
    write: (stream, text) => written.push(`${stream}:${text}`),
  });
  expect(written).toEqual(["log:INFO starting\n", "log:WARN careful\nnow\n"]);
  expect(seen).toHaveLength(3);
});

it("validate reports a workflow left with no tasks (the variables in its list were never defined)", async () => {
  const r = await validate(
    tmp.write("empty.sloth", `workflow.define("production_deploy"):tasks({ deploy })`),
  );
  expect(r.ok).toBe(false);
  expect(r.problems).toEqual([
    expect.objectContaining({
      code: "SLOTH_DSL_INVALID",
      message: expect.stringMatching(/^'production_deploy' has no tasks: list them with :tasks/),
    }),
  ]);
});
