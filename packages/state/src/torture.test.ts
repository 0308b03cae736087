import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { tempDir } from "../test-support/temp.js";
import { runTorture } from "../torture/harness.js";
import { openState } from "./index.js";

const tmp = tempDir();
afterAll(() => tmp.cleanup());

it("keeps fenced writes exclusive and increments intact under kill -9 and SIGSTOP (4 × 250)", async () => {
  const file = path.join(tmp.dir, "torture.db");
  // Create and migrate the file first, as a deployment would.
  await (await openState({ path: file })).close();
  const report = await runTorture({
    file,
    processes: 4,
    cyclesPerProcess: 250,
    ttlMs: 300,
    deadlineMs: 50_000,
  });
  console.info(
    `torture 4x250: ${JSON.stringify({ ...report, violations: report.violations.length })}`,
  );
  expect(report.violations).toEqual([]);
  expect(report.committed).toBeGreaterThan(0);
  expect(report.kills).toBeGreaterThan(0);
  expect(report.stops).toBeGreaterThan(0);
}, 60_000);
