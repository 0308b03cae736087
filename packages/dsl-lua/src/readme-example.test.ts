import { readFileSync } from "node:fs";
import { runWorkflow } from "@sloth/workflow";
import { afterAll, expect, it } from "vitest";
import { loadWorkflowFile, shutdownLuaWorkers } from "./index.js";
import { tempDir } from "./test-helpers.js";

const tmp = tempDir();
afterAll(async () => {
  tmp.cleanup();
  await shutdownLuaWorkers();
});

it("runs the README example", async () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const lua = /`hello\.sloth`:\n\n```lua\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(lua).toBeDefined();
  const file = tmp.write("hello.sloth", lua ?? "");
  const { workflows } = await loadWorkflowFile(file, { values: { who: "world" } });
  const result = await runWorkflow(workflows[0]!).result;
  expect(result.status).toBe("succeeded");
  expect(result.tasks.map((t) => t.message)).toEqual(["hello world", "HELLO"]);
  expect(readme).toContain("// succeeded [ 'hello world', 'HELLO' ]");
});

it("loads the README's table and fluent form snippets", async () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const section = readme.slice(
    readme.indexOf("## The two forms"),
    readme.indexOf("## Calling convention"),
  );
  const blocks = [...section.matchAll(/```lua\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
  expect(blocks).toHaveLength(2);
  const table = await loadWorkflowFile(tmp.write("table.sloth", blocks[0] ?? ""));
  expect(table.groups[0]?.tasks.map((t) => t.name)).toEqual(["compile", "test"]);
  const prelude = 'local fn = function() end\nlocal lint, unit = task("lint"), task("unit")\n';
  const fluent = await loadWorkflowFile(tmp.write("fluent.sloth", prelude + (blocks[1] ?? "")));
  expect(fluent.workflows[0]?.tasks.map((t) => t.name)).toEqual(["build", "lint", "unit"]);
  expect(fluent.workflows[0]?.config).toMatchObject({
    timeoutMs: 1_800_000,
    maxParallelTasks: 4,
    failFast: true,
  });
});
