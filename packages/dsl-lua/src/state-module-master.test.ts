import { connectState } from "@sloth/state";
import { cleanup, startTestMaster } from "@sloth/testkit";
import { afterAll, expect, it } from "vitest";

import { shutdownLuaWorkers } from "./pool.js";
import { loadFile, runCommand, tempDir } from "./test-helpers.js";

const tmp = tempDir();
afterAll(async () => {
  tmp.cleanup();
  await shutdownLuaWorkers();
  await cleanup();
});

it("the state module shares keys and locks through a master's StateService", async () => {
  const tm = await startTestMaster();
  // Each task adds 1 five times under with_lock, and 1 five times with a cas loop.
  const file = tmp.write(
    "shared.sloth",
    `local function bump(key)
  while true do
    local cur = state.get(key)
    if state.cas(key, cur, (cur or 0) + 1) then return end
  end
end
local function work()
  for i = 1, 5 do
    state.with_lock("counter", function()
      local n = state.get("locked", 0)
      state.set("locked", n + 1)
    end, 30)
    bump("swapped")
  end
  return true, "done"
end
workflow.define("w"):tasks({ task("a"):command(work), task("b"):command(work),
  task("c"):command(function()
    state.set("note", "hello", "1h")
    local held, again = state.try_lock("mine", 30), state.try_lock("mine", 30)
    return true, tostring(state.exists("note")), { keys = state.keys(""), held = held, again = again }
  end) })`,
  );
  const state = { master: tm.address, token: tm.token, namespace: "lua" };
  const [w] = (await loadFile(file, { state })).workflows;
  const [a, b, c] = w!.tasks;
  const outs = await Promise.all([runCommand(a!), runCommand(b!)]);
  for (const o of outs) expect(o).toMatchObject({ ok: true, message: "done" });
  expect(await runCommand(c!)).toMatchObject({
    ok: true,
    message: "true",
    output: { keys: ["locked", "note", "swapped"], held: true, again: true },
  });
  const store = await connectState({ master: tm.address, token: tm.token, namespace: "lua" });
  try {
    expect(await store.get("locked")).toBe(10);
    expect(await store.get("swapped")).toBe(10);
    // Locks a task left held are released when it ends; its tokens stay used.
    expect(await store.inspect("mine")).toBeUndefined();
    expect((await store.lock("mine")).fencingToken).toBe(2);
  } finally {
    await store.close();
  }
});

it("a wrong token fails the task with the master's refusal", async () => {
  const tm = await startTestMaster();
  const file = tmp.write(
    "denied.sloth",
    `workflow.define("w"):tasks({ task("t"):command(function() return true, state.get("k") end) })`,
  );
  const [w] = (await loadFile(file, { state: { master: tm.address, token: "wrong" } })).workflows;
  const out = await runCommand(w!.tasks[0]!);
  expect(out.ok).toBe(false);
  expect(`${out.message} ${out.log}`).toMatch(/refused the request: invalid token/);
});
