import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { cleanup, REPO_ROOT, tempDir } from "@sloth/testkit";
import { afterAll, describe, expect, it } from "vitest";

afterAll(cleanup);

const dist = (pkg: string) =>
  pathToFileURL(path.join(REPO_ROOT, "packages", pkg, "dist", "index.js")).href;

describe("a script using the built libraries", () => {
  it("exits on its own after loading and running a workflow with Lua functions (no shutdown call)", () => {
    const dir = tempDir();
    fs.writeFileSync(
      path.join(dir, "hello.sloth"),
      `local hello = task("hello"):command(function(params, deps)
  return true, "hello " .. values.who, { greeting = "hello" }
end)
local shout = task("shout"):depends_on({ hello }):command(function(params, deps)
  return true, string.upper(deps.hello.greeting)
end)
workflow.define("hello"):tasks({ hello, shout })
`,
    );
    fs.writeFileSync(
      path.join(dir, "main.mjs"),
      `import { loadWorkflowFile } from ${JSON.stringify(dist("dsl-lua"))};
import { runWorkflow } from ${JSON.stringify(dist("workflow"))};
const { workflows } = await loadWorkflowFile("hello.sloth", { values: { who: "world" } });
const result = await runWorkflow(workflows[0]).result;
console.log(result.status, result.tasks.map((t) => t.message).join(","));
`,
    );
    const started = Date.now();
    const r = spawnSync(process.execPath, ["main.mjs"], {
      cwd: dir,
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(r.signal, `killed: the process did not exit\n${r.stdout}${r.stderr}`).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("succeeded hello world,HELLO");
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
