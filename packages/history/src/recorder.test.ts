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
  const store = openHistory({ path: path.join(dir, "history.db"), flushIntervalMs: 200 });
  const rec = store.record({ id: "r", workflow: "w", tasks: ["a", "b"] });
  rec.event({ ...base, type: "task.started", task: "a", attempt: 1 });
  await new Promise((r) => setImmediate(r));
  rec.event({ ...base, type: "task.started", task: "b", attempt: 1 });
  await new Promise((r) => setImmediate(r));
  // The first tick was written at once; the second waits for the interval.
  expect(store.getRun("r").tasks.map((t) => t.status)).toEqual(["running", "pending"]);
  await new Promise((r) => setTimeout(r, 300));
  expect(store.getRun("r").tasks.map((t) => t.status)).toEqual(["running", "running"]);
  store.close();
});
