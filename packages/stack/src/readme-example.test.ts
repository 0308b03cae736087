import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, it } from "vitest";

// The README's example, run as written (with its path in a temp dir).
it("README example deploys, snapshots and checks a stack", async () => {
  const readme = fs.readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-stack-readme-"));
  const logs: unknown[][] = [];
  const body = code
    .replace(/^import .*$/gm, "")
    .replace("/tmp/sloth-stack-example", dir)
    .replace(/console\.log/g, "log");
  const { detectDrift, openStackStore } = await import("./index.js");
  const AsyncFunction = (async () => {}).constructor as new (
    ...args: string[]
  ) => (...a: unknown[]) => Promise<void>;
  try {
    await new AsyncFunction("detectDrift", "openStackStore", "log", body)(
      detectDrift,
      openStackStore,
      (...x: unknown[]) => logs.push(x),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  expect(logs).toEqual([[["network", "backend"]], ["v1", true]]);
});
