import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, it } from "vitest";

// The README's example, run as written (with its database in a temp dir).
it("README example runs a schedule on time and records the run", async () => {
  const readme = fs.readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-scheduler-readme-"));
  const logs: unknown[][] = [];
  const body = code
    .replace(/^import .*$/gm, "")
    .replace(/: Launcher/g, "")
    .replace("/tmp/sloth-scheduler-example.db", path.join(dir, "schedules.db"))
    .replace(/console\.log/g, "log");
  const { openScheduleStore, runScheduler } = await import("./index.js");
  const { spawn } = await import("node:child_process");
  const AsyncFunction = (async () => {}).constructor as new (
    ...args: string[]
  ) => (...a: unknown[]) => Promise<void>;
  try {
    await new AsyncFunction("openScheduleStore", "runScheduler", "spawn", "log", body)(
      openScheduleStore,
      runScheduler,
      spawn,
      (...x: unknown[]) => logs.push(x),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  expect(logs).toEqual([[["succeeded"]]]);
}, 20_000);
