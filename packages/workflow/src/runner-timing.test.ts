import { describe, expect, test } from "vitest";
import {
  defineWorkflow,
  type RunEvent,
  type RunOptions,
  retryDelay,
  runWorkflow,
  type WorkflowInput,
} from "./index.js";

async function run(input: WorkflowInput, options: RunOptions = {}) {
  const events: RunEvent[] = [];
  const handle = runWorkflow(defineWorkflow(input), { ...options, onEvent: (e) => events.push(e) });
  return { result: await handle.result, events };
}

/** Start and end times of each task, from the events. */
function spans(events: RunEvent[]): Map<string, { start: number; end: number }> {
  const out = new Map<string, { start: number; end: number }>();
  for (const e of events) {
    if (e.type === "task.started")
      out.set(e.task, { start: e.time, end: Number.POSITIVE_INFINITY });
    if (e.type === "task.succeeded" || e.type === "task.failed") out.get(e.task)!.end = e.time;
  }
  return out;
}

describe("parallelism", () => {
  const sleepers = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ name: `s${i}`, command: "sleep 0.4" }));

  test("independent tasks overlap in time", async () => {
    const { result, events } = await run({ name: "p", tasks: sleepers(3) });
    expect(result.status).toBe("succeeded");
    const s = [...spans(events).values()];
    // All three ran at once: the last to start began before the first ended.
    expect(Math.max(...s.map((x) => x.start))).toBeLessThan(Math.min(...s.map((x) => x.end)));
  });

  test("max parallel 1 runs them one after another", async () => {
    const { events } = await run({ name: "p", tasks: sleepers(3) }, { maxParallel: 1 });
    const s = [...spans(events).values()].sort((a, b) => a.start - b.start);
    for (let i = 1; i < s.length; i++) expect(s[i]!.start).toBeGreaterThanOrEqual(s[i - 1]!.end);
  });

  test("never more than max_parallel_tasks at once", async () => {
    let now = 0;
    let peak = 0;
    const task = async () => {
      peak = Math.max(peak, ++now);
      await new Promise((r) => setTimeout(r, 30));
      now--;
      return { ok: true };
    };
    await run({
      name: "p",
      config: { maxParallelTasks: 2 },
      tasks: Array.from({ length: 6 }, (_, i) => ({ name: `t${i}`, command: task })),
    });
    expect(peak).toBe(2);
  });
});

describe("retries", () => {
  test("retries = N makes up to N+1 attempts, then fails", async () => {
    let calls = 0;
    const { result, events } = await run({
      name: "r",
      tasks: [
        {
          name: "t",
          retries: 2,
          retryDelayMs: 5,
          command: async () => ({ ok: false, message: `try ${++calls}` }),
        },
      ],
    });
    expect(calls).toBe(3);
    expect(result.tasks[0]).toMatchObject({ status: "failed", attempts: 3, message: "try 3" });
    const retrying = events.filter((e) => e.type === "task.retrying");
    expect(retrying.map((e) => e.attempt)).toEqual([2, 3]);
  });

  test("a flaky task succeeds on a later attempt, after the fixed delay", async () => {
    const times: number[] = [];
    const { result, events } = await run({
      name: "r",
      tasks: [
        {
          name: "t",
          retries: 3,
          retryBackoff: "fixed",
          retryDelayMs: 60,
          command: async () => {
            times.push(Date.now());
            return { ok: times.length === 3 };
          },
        },
      ],
    });
    expect(result.tasks[0]).toMatchObject({ status: "succeeded", attempts: 3 });
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(55);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(55);
    expect(events.filter((e) => e.type === "task.retrying").map((e) => e.delayMs)).toEqual([
      60, 60,
    ]);
  });

  test("exponential delays double from the base, with full jitter", async () => {
    const { events } = await run(
      {
        name: "r",
        tasks: [{ name: "t", retries: 3, retryDelayMs: 10, command: async () => ({ ok: false }) }],
      },
      { random: () => 0.999_999 },
    );
    expect(events.filter((e) => e.type === "task.retrying").map((e) => e.delayMs)).toEqual([
      9, 19, 39,
    ]);
  });

  test("a non-retryable failure is not retried", async () => {
    let calls = 0;
    const { result } = await run({
      name: "r",
      tasks: [
        {
          name: "t",
          retries: 5,
          command: async () => {
            calls++;
            return { ok: false, retryable: false };
          },
        },
      ],
    });
    expect(calls).toBe(1);
    expect(result.tasks[0]?.attempts).toBe(1);
  });

  test("retryDelay: cap at 30 s, jitter range, fixed keeps the base", () => {
    expect(retryDelay(0, "exponential", 1000, () => 0.5)).toBe(500);
    expect(retryDelay(3, "exponential", 1000, () => 0.5)).toBe(4000);
    expect(retryDelay(20, "exponential", 1000, () => 0.999)).toBe(29_970);
    expect(retryDelay(5, "exponential", 1000, () => 0)).toBe(0);
    expect(retryDelay(7, "fixed", 250)).toBe(250);
    expect(retryDelay(0, "fixed", 60_000)).toBe(30_000);
  });
});
