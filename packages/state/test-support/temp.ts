import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** A fresh temp directory; the returned function deletes it. */
export function tempDir(prefix = "sloth-state-"): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Resolves once the wall clock is past `t` (ms since epoch). */
export async function waitUntilPast(t: number): Promise<void> {
  while (Date.now() <= t) await new Promise((r) => setTimeout(r, Math.max(1, t - Date.now() + 1)));
}
