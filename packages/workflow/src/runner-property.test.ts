import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { defineWorkflow, runWorkflow, type TaskInput } from "./index.js";

// Random DAGs (task i may depend on any earlier task), random limits and
// random failures: the schedule must respect every dependency and the limit,
// and every task must end in the state the rules give it.
const dag = fc.integer({ min: 1, max: 14 }).chain((n) =>
  fc.record({
    deps: fc.tuple(
      ...Array.from({ length: n }, (_, i) => fc.subarray(Array.from({ length: i }, (_, j) => j))),
    ),
    fails: fc.subarray(
      Array.from({ length: n }, (_, i) => i),
      { maxLength: Math.min(3, n) },
    ),
    maxParallel: fc.integer({ min: 1, max: 5 }),
    order: fc.shuffledSubarray(
      Array.from({ length: n }, (_, i) => i),
      { minLength: n, maxLength: n },
    ),
  }),
);

describe("scheduling properties", () => {
  test("dependencies first, never above the limit, failures skip exactly their dependents", async () => {
    await fc.assert(
      fc.asyncProperty(dag, async ({ deps, fails, maxParallel, order }) => {
        const log: string[] = [];
        let running = 0;
        let peak = 0;
        const tasks: TaskInput[] = order.map((i) => ({
          name: `t${i}`,
          dependsOn: (deps[i] ?? []).map((j) => `t${j}`),
          command: async () => {
            peak = Math.max(peak, ++running);
            log.push(`start t${i}`);
            await new Promise((r) => setImmediate(r));
            running--;
            log.push(`end t${i}`);
            return { ok: !fails.includes(i) };
          },
        }));
        const result = await runWorkflow(
          defineWorkflow({ name: "p", tasks, config: { maxParallelTasks: maxParallel } }),
        ).result;
        expect(peak).toBeLessThanOrEqual(maxParallel);
        // Expected state: failed if it fails itself, skipped if any dependency did not succeed.
        const expected = new Map<number, string>();
        for (let i = 0; i < deps.length; i++) {
          const blocked = (deps[i] ?? []).some((j) => expected.get(j) !== "succeeded");
          expected.set(i, blocked ? "skipped" : fails.includes(i) ? "failed" : "succeeded");
        }
        for (const t of result.tasks) {
          const i = Number(t.name.slice(1));
          expect(t.status).toBe(expected.get(i));
          if (t.status === "skipped") continue;
          for (const j of deps[i] ?? []) {
            expect(log.indexOf(`end t${j}`)).toBeLessThan(log.indexOf(`start t${i}`));
          }
        }
        expect(result.status).toBe(
          fails.some((i) => expected.get(i) === "failed") ? "failed" : "succeeded",
        );
      }),
      { numRuns: 150 },
    );
  });

  test("a thousand tasks schedule quickly", async () => {
    const tasks: TaskInput[] = Array.from({ length: 1000 }, (_, i) => ({
      name: `t${i}`,
      dependsOn: i === 0 ? [] : [`t${Math.floor((i - 1) / 2)}`],
      command: async () => ({ ok: true }),
    }));
    const started = Date.now();
    const result = await runWorkflow(defineWorkflow({ name: "big", tasks })).result;
    expect(result.counts.succeeded).toBe(1000);
    // Generous: the point is to catch quadratic blow-ups, not to benchmark.
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
