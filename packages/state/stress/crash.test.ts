import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { tempDir } from "../test-support/temp.js";
import { runCrashLoop } from "../torture/crash.js";

const tmp = tempDir();
afterAll(() => tmp.cleanup());

it("survives 60 kill -9 rounds: file intact, acknowledged writes present", async () => {
  const report = await runCrashLoop(path.join(tmp.dir, "crash.db"), 60);
  expect(report.integrity).toBe("ok");
  expect(report.missing).toEqual([]);
}, 600_000);
