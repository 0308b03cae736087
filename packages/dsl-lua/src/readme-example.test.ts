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
