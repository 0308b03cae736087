import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { tempDir } from "../test-support/temp.js";
import { runCrashLoop } from "../torture/crash.js";

const tmp = tempDir();
afterAll(() => tmp.cleanup());

it("survives a writer killed with kill -9 in a loop: file intact, acknowledged writes present", async () => {
  const report = await runCrashLoop(path.join(tmp.dir, "crash.db"), 6);
  expect(report.integrity).toBe("ok");
  expect(report.acknowledged).toBeGreaterThan(6);
  expect(report.missing).toEqual([]);
}, 60_000);
