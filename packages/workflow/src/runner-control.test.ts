import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import {
  defineWorkflow,
  type RunEvent,
  type RunOptions,
  runWorkflow,
  type WorkflowInput,
} from "./index.js";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-wf-"));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function start(input: WorkflowInput, options: RunOptions = {}) {
  const events: RunEvent[] = [];
  const handle = runWorkflow(defineWorkflow({ baseDir: dir, ...input }), {
    ...options,
    onEvent: (e) => events.push(e),
  });
  return { handle, events };
}

/** Alive and not a zombie (a container's init may never reap). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

async function waitFor(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A script that records its shell's pid and a background child's pid, then waits. */
const sleeper = (name: string) => `echo $$ > ${name}.pid; sleep 30 & echo $! > ${name}.child; wait`;

function pids(name: string): number[] {
  return ["pid", "child"].map((ext) =>
    Number(fs.readFileSync(path.join(dir, `${name}.${ext}`), "utf8")),
  );
}

const exists = (name: string) => () => fs.existsSync(path.join(dir, `${name}.child`));

describe("timeouts and process groups", () => {
  test("a timeout kills the whole process group, and is retried", async () => {
    const { handle, events } = start({
      name: "t",
      tasks: [
        { name: "slow", timeoutMs: 1500, retries: 1, retryDelayMs: 1, command: sleeper("slow") },
      ],
    });
    const result = await handle.result;
    expect(result.tasks[0]).toMatchObject({
      status: "failed",
      attempts: 2,
      message: "timed out after 1.5s",
    });
    expect(events.filter((e) => e.type === "task.timed_out")).toHaveLength(2);
    for (const pid of pids("slow")) await waitFor(() => !alive(pid));
  });

  test("background processes do not outlive a finished task", async () => {
    const { handle } = start({
      name: "bg",
      tasks: [{ name: "bg", command: "sleep 30 & echo $! > bg.child; echo done" }],
    });
    const result = await handle.result;
    expect(result.status).toBe("succeeded");
    const child = Number(fs.readFileSync(path.join(dir, "bg.child"), "utf8"));
    await waitFor(() => !alive(child));
  });

  test("cancel() interrupts: running tasks are killed and cancelled, the rest skipped", async () => {
    const { handle, events } = start({
      name: "i",
      tasks: [
        { name: "a", command: sleeper("a") },
        { name: "b", dependsOn: ["a"], command: "true" },
      ],
    });
    await waitFor(exists("a"));
    handle.cancel("interrupted by SIGINT");
    const result = await handle.result;
    expect(result.status).toBe("interrupted");
    expect(result.message).toBe("interrupted by SIGINT");
    expect(result.tasks.map((t) => t.status)).toEqual(["cancelled", "skipped"]);
    expect(events.at(-1)).toMatchObject({ type: "workflow.interrupted" });
    for (const pid of pids("a")) await waitFor(() => !alive(pid));
  });

  test("an aborted signal option interrupts the run too", async () => {
    const controller = new AbortController();
    const { handle } = start(
      { name: "i", tasks: [{ name: "a", command: sleeper("a") }] },
      { signal: controller.signal },
    );
    await waitFor(exists("a"));
    controller.abort();
    expect((await handle.result).status).toBe("interrupted");
  });

  test("abort_if true aborts the run and cancels running tasks", async () => {
    const { handle, events } = start({
      name: "ab",
      tasks: [
        { name: "long", command: sleeper("long") },
        {
          name: "gate",
          dependsOn: [],
          abortIf: { kind: "shell", script: `while [ ! -f long.child ]; do sleep 0.01; done` },
        },
        { name: "later", dependsOn: ["gate"], command: "true" },
      ],
    });
    const result = await handle.result;
    expect(result.status).toBe("aborted");
    expect(result.message).toBe("task 'gate' aborted the run: abort_if is true");
    expect(result.tasks.map((t) => t.status)).toEqual(["cancelled", "cancelled", "skipped"]);
    expect(events.at(-1)).toMatchObject({ type: "workflow.aborted", task: "gate" });
    for (const pid of pids("long")) await waitFor(() => !alive(pid));
  });

  test("fail_fast cancels running tasks after the first failure", async () => {
    const { handle } = start({
      name: "ff",
      config: { failFast: true },
      tasks: [
        { name: "long", command: sleeper("long") },
        { name: "bad", command: "while [ ! -f long.child ]; do sleep 0.01; done; exit 1" },
      ],
    });
    const result = await handle.result;
    expect(result.status).toBe("failed");
    expect(result.message).toBe("fail_fast: task 'bad' failed");
    expect(result.tasks.map((t) => t.status)).toEqual(["cancelled", "failed"]);
  });

  test("a function task gets its grace to stop, but cannot hold the run", async () => {
    let cleanedUp = false;
    const { handle } = start(
      {
        name: "fn",
        tasks: [
          {
            name: "polite",
            timeoutMs: 50,
            command: (ctx) =>
              new Promise((resolve) => {
                ctx.signal.addEventListener("abort", () =>
                  setTimeout(() => {
                    cleanedUp = true;
                    resolve({ ok: false });
                  }, 100),
                );
              }),
          },
          { name: "deaf", timeoutMs: 50, command: () => new Promise(() => {}) },
        ],
      },
      { killGraceMs: 300 },
    );
    const result = await handle.result;
    expect(cleanedUp).toBe(true);
    expect(result.tasks.map((t) => t.message)).toEqual([
      "timed out after 50ms",
      "timed out after 50ms",
    ]);
    expect(result.durationMs).toBeLessThan(5000);
  });

  test("the workflow timeout stops the run", async () => {
    const { handle } = start({
      name: "wt",
      config: { timeoutMs: 300 },
      tasks: [{ name: "a", command: sleeper("a") }],
    });
    const result = await handle.result;
    expect(result).toMatchObject({ status: "failed", message: "workflow timed out after 300ms" });
    expect(result.tasks[0]?.status).toBe("cancelled");
  });
});
