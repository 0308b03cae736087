import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { defineWorkflow, runWorkflow, type WorkflowModel } from "@sloth/workflow";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type HistoryStore, HOOKS_LOG, isHistoryError, openHistory, planResume } from "./index.js";

let dir: string;
let store: HistoryStore;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-history-"));
  store = openHistory({ path: path.join(dir, "history.db"), logLimit: 16 });
});
afterEach(() => {
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs a model with a recorder attached, as the CLI does. */
async function record(model: WorkflowModel, runId: string, extra: { resumedFrom?: string } = {}) {
  const rec = store.record({
    id: runId,
    workflow: model.name,
    tasks: model.tasks.map((t) => t.name),
    ...extra,
  });
  const run = runWorkflow(model, { runId, onEvent: (e) => rec.event(e) });
  const result = await run.result;
  rec.finish(result);
  expect(rec.error).toBeUndefined();
  return result;
}

const ok = (output: Record<string, string>) => async () => ({ ok: true, output });

describe("history", () => {
  it("records a successful run: tasks in order, attempts, outputs, logs with the tail kept", async () => {
    const model = defineWorkflow({
      name: "ok",
      tasks: [
        {
          name: "a",
          command: async (ctx) => {
            ctx.log.write("log", "0123456789abcdefghij");
            ctx.log.write("log", "KLMNOP\n");
            return { ok: true, message: "fine", output: { v: "1" } };
          },
        },
        { name: "b", dependsOn: ["a"], command: ok({ w: "2" }) },
      ],
    });
    await record(model, "20260101T000000-aaaaaa");
    const [run] = store.listRuns();
    expect(run).toMatchObject({
      id: "20260101T000000-aaaaaa",
      workflow: "ok",
      status: "succeeded",
    });
    expect(run?.endedAt).toBeInstanceOf(Date);
    const detail = store.getRun("20260101T000000-a");
    expect(detail.tasks.map((t) => [t.name, t.status, t.attempts, t.output])).toEqual([
      ["a", "succeeded", 1, { v: "1" }],
      ["b", "succeeded", 1, { w: "2" }],
    ]);
    expect(detail.tasks[0]?.message).toBe("fine");
    const [log] = store.taskLogs(run!.id, "a");
    expect(log).toEqual({ task: "a", text: "bcdefghijKLMNOP\n", size: 27, truncated: true });
  });

  it("keeps the output of the workflow's own hooks after the tasks' logs", async () => {
    const model = defineWorkflow({
      name: "hooked",
      tasks: [{ name: "a", command: ok({}) }],
      hooks: {
        onStart: async (log) => log?.write("stdout", "starting\n"),
        onComplete: async (success, _results, log) => log?.write("log", `done: ${success}\n`),
      },
    });
    await record(model, "20260101T000000-hhhhhh");
    const logs = store.taskLogs("20260101T000000-hhhhhh");
    expect(logs.at(-1)).toEqual({
      task: HOOKS_LOG,
      hooks: true,
      // This store keeps 16 bytes of each log.
      text: "ting\ndone: true\n",
      size: 20,
      truncated: true,
    });
    expect(store.taskLogs("20260101T000000-hhhhhh", HOOKS_LOG)).toHaveLength(1);
  });

  it("records failures, skips and the tasks that never ran; filters by workflow and status", async () => {
    const model = defineWorkflow({
      name: "bad",
      tasks: [
        { name: "a", command: async () => ({ ok: false, message: "boom" }) },
        { name: "b", dependsOn: ["a"], command: ok({}) },
        { name: "c", command: ok({ c: "3" }) },
      ],
    });
    await record(model, "20260101T000001-bbbbbb");
    await record(
      defineWorkflow({ name: "ok", tasks: [{ name: "x", command: ok({}) }] }),
      "20260101T000002-cccccc",
    );
    expect(store.listRuns({ status: "failed" }).map((r) => r.id)).toEqual([
      "20260101T000001-bbbbbb",
    ]);
    expect(store.listRuns({ workflow: "ok" }).map((r) => r.id)).toEqual(["20260101T000002-cccccc"]);
    expect(store.listRuns().map((r) => r.id)).toEqual([
      "20260101T000002-cccccc",
      "20260101T000001-bbbbbb",
    ]);
    const detail = store.getRun("20260101T000001-bbbbbb");
    expect(detail).toMatchObject({ status: "failed", message: "task 'a' failed" });
    expect(detail.tasks.map((t) => [t.name, t.status, t.message ?? null])).toEqual([
      ["a", "failed", "boom"],
      ["b", "skipped", "dependency 'a' failed"],
      ["c", "succeeded", null],
    ]);
    expect(planResume(detail)).toEqual({ completed: { c: { c: "3" } }, rerun: ["a", "b"] });
  });

  it("writes a tick's events in one go, after the tick", async () => {
    const rec = store.record({ id: "r1", workflow: "w", tasks: ["a"] });
    rec.event({ type: "task.started", task: "a", attempt: 1, runId: "r1", time: 1 });
    expect(store.getRun("r1").tasks[0]?.status).toBe("pending");
    await new Promise((r) => setImmediate(r));
    expect(store.getRun("r1").tasks[0]?.status).toBe("running");
  });

  it("shows a run whose runner died as interrupted, and fixes it up", () => {
    const dead = spawnSync(process.execPath, ["-e", "0"]).pid;
    store.record({ id: "r-dead", workflow: "w", tasks: ["a"], pid: dead });
    const rec = store.record({ id: "r-live", workflow: "w", tasks: ["a"] });
    rec.event({ type: "task.started", task: "a", attempt: 1, runId: "r-dead", time: 1 });
    rec.flush();
    expect(store.getRun("r-dead")).toMatchObject({
      status: "interrupted",
      message: `the runner (pid ${dead}) stopped before the run ended`,
    });
    expect(store.getRun("r-live").status).toBe("running");
    expect(store.getRun("r-live").tasks[0]?.status).toBe("running");
  });

  // Boot ids and process start times come from /proc.
  it.runIf(process.platform === "linux")(
    "takes a live pid for a dead runner after a reboot, or when it started at another time",
    () => {
      store.record({ id: "r-boot", workflow: "w", tasks: [] });
      store.record({ id: "r-start", workflow: "w", tasks: [] });
      store.record({ id: "r-same", workflow: "w", tasks: [] });
      const raw = new Database(path.join(dir, "history.db"));
      raw.prepare("UPDATE history_runs SET boot_id = 'another boot' WHERE id = 'r-boot'").run();
      raw.prepare("UPDATE history_runs SET pid_start = '1' WHERE id = 'r-start'").run();
      raw.close();
      expect(["r-boot", "r-start", "r-same"].map((id) => store.getRun(id).status)).toEqual([
        "interrupted",
        "interrupted",
        "running",
      ]);
    },
  );

  it("prunes finished runs older than a date, never running ones", () => {
    const old = new Date(Date.now() - 40 * 86_400_000);
    store.record({ id: "old-done", workflow: "w", tasks: ["a"], startedAt: old }).finish({
      runId: "old-done",
      workflow: "w",
      status: "succeeded",
      durationMs: 1,
      tasks: [],
      counts: { succeeded: 0, failed: 0, skipped: 0, cancelled: 0 },
    });
    store.record({ id: "old-running", workflow: "w", tasks: ["a"], startedAt: old });
    store.record({ id: "new", workflow: "w", tasks: ["a"] });
    expect(store.prune(new Date(Date.now() - 30 * 86_400_000))).toEqual(["old-done"]);
    expect(
      store
        .listRuns()
        .map((r) => r.id)
        .sort(),
    ).toEqual(["new", "old-running"]);
  });

  it("names unknown and ambiguous ids", () => {
    store.record({ id: "abc-1", workflow: "w", tasks: [] });
    store.record({ id: "abc-2", workflow: "w", tasks: [] });
    const codes = ["zzz", "abc", ""].map((id) => {
      try {
        store.getRun(id);
        return "found";
      } catch (e) {
        return isHistoryError(e) ? e.code : String(e);
      }
    });
    expect(codes).toEqual([
      "SLOTH_HISTORY_RUN_NOT_FOUND",
      "SLOTH_HISTORY_AMBIGUOUS_ID",
      "SLOTH_HISTORY_RUN_NOT_FOUND",
    ]);
    expect(() => store.taskLogs("abc-1", "nope")).toThrow("task 'nope' not found in run 'abc-1'");
  });
});
