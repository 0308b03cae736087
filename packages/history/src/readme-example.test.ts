import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, it } from "vitest";

// The README's example, run as written (with its path in a temp dir).
it("README example records a run", async () => {
  const readme = fs.readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-history-readme-"));
  const logs: unknown[] = [];
  const body = code
    .replace(/^import .*$/gm, "")
    .replace("/tmp/sloth-history-example", dir)
    .replace(/console\.log/g, "log");
  const { openHistory } = await import("./index.js");
  const { defineWorkflow, runWorkflow } = await import("@sloth/workflow");
  const AsyncFunction = (async () => {}).constructor as new (
    ...args: string[]
  ) => (...a: unknown[]) => Promise<void>;
  try {
    await new AsyncFunction("openHistory", "defineWorkflow", "runWorkflow", "log", body)(
      openHistory,
      defineWorkflow,
      runWorkflow,
      (x: unknown) => logs.push(x),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  expect(logs).toEqual([{ stdout: "hello\n", stderr: "", exit_code: 0 }]);
});
