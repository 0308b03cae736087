import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { openHistory } from "./index.js";
import { tail } from "./recorder.js";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-recorder-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const base = { runId: "r", time: 1 };

it("keeps whole characters when cutting a log's tail", () => {
  expect(tail("héllo wörld", 6)).toBe("wörld");
  expect(tail("ab€", 2)).toBe("");
  expect(tail("short", 64)).toBe("short");
});

it("never throws when the database is gone; the error is kept", () => {
  const store = openHistory({ path: path.join(dir, "history.db") });
  const rec = store.record({ id: "r", workflow: "w", tasks: ["a"] });
  store.close();
  expect(() => rec.event({ ...base, type: "task.started", task: "a", attempt: 1 })).not.toThrow();
  expect(() => rec.flush()).not.toThrow();
  expect(rec.error?.message).toMatch(/not open/);
});

it("writes events of a burst of ticks together, at most once per interval", async () => {
  // An interval no fsync or stall on a loaded machine comes near. The first
  // write waits for the process to be that old (intervals count from its start).
  const interval = 1500;
  await new Promise((r) => setTimeout(r, Math.max(0, interval + 100 - performance.now())));
  const store = openHistory({ path: path.join(dir, "history.db"), flushIntervalMs: interval });
  const rec = store.record({ id: "r", workflow: "w", tasks: ["a", "b"] });
  rec.event({ ...base, type: "task.started", task: "a", attempt: 1 });
  await new Promise((r) => setImmediate(r));
  rec.event({ ...base, type: "task.started", task: "b", attempt: 1 });
  await new Promise((r) => setImmediate(r));
  // The first tick was written at once; the second waits for the interval.
  expect(store.getRun("r").tasks.map((t) => t.status)).toEqual(["running", "pending"]);
  await expect
    .poll(() => store.getRun("r").tasks.map((t) => t.status), { timeout: 10_000, interval: 100 })
    .toEqual(["running", "running"]);
  store.close();
});

it("records the agents a task's last attempt ran on, and none for a task run here", () => {
  const file = path.join(dir, "history.db");
  const store = openHistory({ path: file });
  const rec = store.record({ id: "r", workflow: "w", tasks: ["remote", "here"] });
  const end = { attempts: 1, durationMs: 5 };
  rec.event({
    ...base,
    type: "task.succeeded",
    task: "remote",
    ...end,
    agents: ["web-1", "web-2"],
  });
  rec.event({ ...base, type: "task.failed", task: "here", ...end, message: "exit 1" });
  rec.flush();
  store.close();
  // Read back by another opening of the file, as `runs show` does.
  const again = openHistory({ path: file });
  const [remote, here] = again.getRun("r").tasks;
  expect(remote?.agents).toEqual(["web-1", "web-2"]);
  expect(here).not.toHaveProperty("agents");
  again.close();
});
