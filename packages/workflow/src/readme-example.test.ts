import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { expect, test } from "vitest";
import * as workflow from "./index.js";

test("the README example runs", async () => {
  const readme = fs.readFileSync(
    path.join(path.dirname(fileURLToPath(import.meta.url)), "../README.md"),
    "utf8",
  );
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(code).toBeDefined();
  // Run the example as written, with its import bound to this package and
  // its console captured.
  const body = code!
    .replace(/^import .*$/m, "const { defineWorkflow, runWorkflow } = workflow;")
    .replace("// result.status", "return result; //");
  const lines: string[] = [];
  const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (
    ...args: string[]
  ) => (...args: unknown[]) => Promise<workflow.RunResult>;
  const example = new AsyncFunction("workflow", "console", body);
  const result = await example(workflow, { log: (...a: unknown[]) => lines.push(a.join(" ")) });
  expect(result.status).toBe("succeeded");
  expect(result.tasks[1]?.output).toEqual({ text: "HELLO\n" });
  expect(lines).toEqual([
    "workflow.started ",
    "task.started greet",
    "task.log greet",
    "task.succeeded greet",
    "task.started shout",
    "task.succeeded shout",
    "workflow.completed ",
  ]);
});
