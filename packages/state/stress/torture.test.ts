import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { openState } from "../src/index.js";
import { tempDir } from "../test-support/temp.js";
import { runTorture } from "../torture/harness.js";

const tmp = tempDir();
afterAll(() => tmp.cleanup());

it("keeps fenced writes exclusive and increments intact under kill -9 and SIGSTOP (8 × 1,000)", async () => {
  const file = path.join(tmp.dir, "torture.db");
  await (await openState({ path: file })).close();
  const report = await runTorture({
    file,
    processes: 8,
    cyclesPerProcess: 1000,
    ttlMs: 300,
    deadlineMs: 540_000,
  });
  console.info(
    `torture 8x1000: ${JSON.stringify({ ...report, violations: report.violations.length })}`,
  );
  expect(report.violations).toEqual([]);
  expect(report.kills).toBeGreaterThan(0);
  expect(report.stops).toBeGreaterThan(0);
}, 600_000);
