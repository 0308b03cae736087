import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { runWorkflow } from "@sloth/workflow";
import { afterAll, describe, expect, it } from "vitest";
import { loadWorkflowFile } from "./index.js";
import { shutdownLuaWorkers } from "./pool.js";
import { context, runCommand, tempDir } from "./test-helpers.js";

const tmp = tempDir();
afterAll(async () => {
  tmp.cleanup();
  await shutdownLuaWorkers();
});

async function until(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("isolation", () => {
  it("a runaway loop with a 1 s timeout fails at about 1 s; a parallel sleep 0.5 finishes on time", async () => {
    const file = tmp.write(
      "spin.sloth",
      `workflow.define("spin"):tasks({
  task("spin"):timeout("1s"):command(function() while true do end end),
  task("nap"):command("sleep 0.5"),
  task("after"):depends_on("nap"):command(function() return true, "still here" end),
})`,
    );
    const [w] = (await loadWorkflowFile(file)).workflows;
    const t0 = Date.now();
    const result = await runWorkflow(w!).result;
    const byName = Object.fromEntries(result.tasks.map((t) => [t.name, t]));
    expect(byName.spin?.status).toBe("failed");
    expect(byName.spin?.durationMs).toBeGreaterThanOrEqual(950);
    // Bounds far above the work (one core spins; workers boot from source)
    // and far below what a blocked event loop would take (the loop spins forever).
    expect(byName.spin?.durationMs).toBeLessThan(5000);
    expect(byName.nap?.status).toBe("succeeded");
    expect(byName.nap?.durationMs).toBeLessThan(3000);
    expect(byName.after).toMatchObject({ status: "succeeded", message: "still here" });
    expect(Date.now() - t0).toBeLessThan(15_000);
  });

  it("slow calls run in the task's worker: two Lua sleeps overlap", async () => {
    const file = tmp.write(
      "naps.sloth",
      `local function nap()
  local s = time.now_ms(); time.sleep(0.6); return true, "", { s = s, e = time.now_ms() }
end
workflow.define("naps"):tasks({ task("a"):command(nap), task("b"):command(nap) })`,
    );
    const [w] = (await loadWorkflowFile(file)).workflows;
    // The first run boots the workers (slow under load); the second measures.
    await runWorkflow(w!).result;
    const result = await runWorkflow(w!).result;
    expect(result.status).toBe("succeeded");
    const [a, b] = result.tasks.map((t) => t.output as { s: number; e: number });
    // Both naps were in progress at the same moment.
    expect(Math.max(a!.s, b!.s)).toBeLessThan(Math.min(a!.e, b!.e));
  });

  it("stopping a task kills its exec.run process group", async () => {
    const pidFile = join(tmp.dir, "pid.txt");
    const file = tmp.write(
      "child.sloth",
      `workflow.define("w"):tasks({ task("t"):command(function()
  exec.run("sleep 30 & echo $! > ${pidFile}; wait")
end) })`,
    );
    const task = (await loadWorkflowFile(file)).workflows[0]!.tasks[0]!;
    const stop = new AbortController();
    const ctx = context(task, { signal: stop.signal });
    if (task.command?.kind !== "function") throw new Error("expected a function");
    const running = task.command.fn(ctx);
    await until(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "", 10_000);
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(alive(pid)).toBe(true);
    stop.abort(new Error("timed out"));
    const outcome = await running;
    expect(outcome).toMatchObject({ ok: false, message: "stopped: timed out" });
    await until(() => !alive(pid), 5000);
  });

  it("tasks never see each other's globals, even in a reused worker", async () => {
    const file = tmp.write(
      "globals.sloth",
      `counter = 0
workflow.define("w"):tasks({
  task("a"):command(function() counter = counter + 1; leaked = "yes"; return true, tostring(counter) .. tostring(leaked) end),
})`,
    );
    const task = (await loadWorkflowFile(file)).workflows[0]!.tasks[0]!;
    expect((await runCommand(task)).message).toBe("1yes");
    expect((await runCommand(task)).message).toBe("1yes");
  });

  it("top-level locals a task (or a helper it calls) changes are put back, even when it fails", async () => {
    const file = tmp.write(
      "locals.sloth",
      `local count, seen = 0, nil
local function bump() count = count + 1; return count end
workflow.define("w"):tasks({
  task("a"):command(function() seen = "a"; return true, tostring(bump()) end),
  task("b"):command(function() bump(); error("boom " .. count) end),
  task("c"):command(function() return true, tostring(count) .. tostring(seen) end),
})`,
    );
    const [a, b, c] = (await loadWorkflowFile(file)).workflows[0]!.tasks;
    expect((await runCommand(a!)).message).toBe("1");
    expect((await runCommand(b!)).message).toMatch(/boom 1/);
    expect((await runCommand(a!)).message).toBe("1");
    expect((await runCommand(c!)).message).toBe("0nil");
  });

  it("runs the top level once per worker, not once per call", async () => {
    const counter = join(tmp.dir, "top-level-runs.txt");
    const file = tmp.write(
      "once.sloth",
      `local n = tonumber(fs.exists("${counter}") and fs.read("${counter}") or "0") + 1
fs.write("${counter}", tostring(n))
workflow.define("w"):tasks({ task("a"):command(function() return true, tostring(n) end) })`,
    );
    await shutdownLuaWorkers();
    const task = (await loadWorkflowFile(file)).workflows[0]!.tasks[0]!;
    // The worker that loaded the file keeps it: three calls, one top-level run.
    for (let i = 0; i < 3; i++) expect((await runCommand(task)).message).toBe("1");
    expect(readFileSync(counter, "utf8")).toBe("1");
  });

  it("finds each function by its task's name when a new worker builds the lists in another order", async () => {
    const counter = join(tmp.dir, "loads.txt");
    const file = tmp.write(
      "order.sloth",
      `local n = tonumber(fs.exists("${counter}") and fs.read("${counter}") or "0") + 1
fs.write("${counter}", tostring(n))
local names = n % 2 == 1 and { "a", "b", "c" } or { "c", "b", "a" }
if n >= 3 then names = { "a", "b" } end
local tasks = {}
for _, name in ipairs(names) do tasks[#tasks + 1] = task(name):command(function() return true, name end) end
workflow.define("w"):tasks(tasks)`,
    );
    const [w] = (await loadWorkflowFile(file)).workflows;
    const [a, , c] = w!.tasks;
    expect((await runCommand(a!)).message).toBe("a");
    // Fresh workers load the file again: the second load lists c first.
    await shutdownLuaWorkers();
    expect((await runCommand(c!)).message).toBe("c");
    await shutdownLuaWorkers();
    const gone = await runCommand(c!);
    expect(gone.ok).toBe(false);
    expect(gone.message).toMatch(
      /cannot find the function at workflow 'w'\.tasks\[c\]\.command when loading the file again/,
    );
  });

  it("a runner timeout stops the Lua and leaves no exec.run process behind", async () => {
    const pidFile = join(tmp.dir, "timeout-pid.txt");
    const file = tmp.write(
      "timeout.sloth",
      `workflow.define("w"):tasks({ task("t"):timeout("2s"):command(function()
  exec.run("sleep 30 & echo $! > ${pidFile}; wait")
end) })`,
    );
    const [w] = (await loadWorkflowFile(file)).workflows;
    const result = await runWorkflow(w!).result;
    expect(result.tasks[0]).toMatchObject({ status: "failed" });
    const pid = Number(readFileSync(pidFile, "utf8"));
    await until(() => !alive(pid), 5000);
  });
});
