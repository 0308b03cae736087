import { join } from "node:path";
import { openState } from "@sloth/state";
import { afterAll, expect, it } from "vitest";

import { shutdownLuaWorkers } from "./pool.js";
import { loadFile, runCommand, tempDir } from "./test-helpers.js";

const tmp = tempDir();
afterAll(async () => {
  tmp.cleanup();
  await shutdownLuaWorkers();
});

it("the state module reads and writes the state file given to the loader", async () => {
  const statePath = join(tmp.dir, "state.db");
  const file = tmp.write(
    "state.sloth",
    `workflow.define("w"):tasks({ task("t"):command(function()
  state.set("app.version", "1.2.3")
  state.set("app.cfg", { replicas = 3 }, "1h")
  state.set("tmp", 1, 0.001)
  local n = state.increment("counter")
  n = state.increment("counter", 4)
  local swapped = state.cas("app.version", "1.2.3", "1.2.4")
  local refused = state.compare_swap("app.version", "0.0.0", "9")
  local locked = state.try_lock("deploy", 10)
  local inner = state.with_lock("other", function() return "inside" end, 1)
  state.unlock("deploy")
  time.sleep(0.05)
  return true, state.get("app.version"), {
    n = n, swapped = swapped, refused = refused, locked = locked, inner = inner,
    cfg = state.get("app.cfg"), dflt = state.get("missing", "d"), tmp = state.exists("tmp"),
    keys = state.keys("app."), deleted = state.delete("app.cfg"),
  }
end), task("holder"):command(function()
  return true, tostring(state.try_lock("held", 30))
end) })`,
  );
  const [w] = (await loadFile(file, { statePath })).workflows;
  const out = await runCommand(w!.tasks[0]!);
  expect(out).toMatchObject({
    ok: true,
    message: "1.2.4",
    output: {
      n: 5,
      swapped: true,
      refused: false,
      locked: true,
      inner: "inside",
      cfg: { replicas: 3 },
      dflt: "d",
      tmp: false,
      keys: ["app.cfg", "app.version"],
      deleted: true,
    },
  });
  // A lock the task did not release is released when the task ends.
  expect((await runCommand(w!.tasks[1]!)).message).toBe("true");
  const store = await openState({ path: statePath });
  try {
    expect(await store.get("app.version")).toBe("1.2.4");
    expect(await store.inspect("held")).toBeUndefined();
    expect(await store.inspect("deploy")).toBeUndefined();
  } finally {
    await store.close();
  }
});

it("stores lists as lists, empty ones too, and names a value it cannot store at the caller's line", async () => {
  const statePath = join(tmp.dir, "state-lists.db");
  const file = tmp.write(
    "state-lists.sloth",
    `workflow.define("w"):tasks({ task("t"):command(function()
  state.set("conf", json.decode('{"a":[],"b":[1],"c":{}}'))
  state.set("empty", json.array())
  local swapped = state.cas("empty", json.array(), { 1 })
  local ok, err = pcall(function()
    state.set("bad", { f = function() end })
  end)
  return true, json.encode(state.get("conf")), { swapped = swapped, now = state.get("empty"), err = err }
end) })`,
  );
  const [w] = (await loadFile(file, { statePath })).workflows;
  const out = await runCommand(w!.tasks[0]!);
  expect(out.message).toBe('{"a":[],"b":[1],"c":{}}');
  expect(out.output?.swapped).toBe(true);
  expect(out.output?.now).toEqual([1]);
  expect(out.output?.err).toMatch(/state-lists\.sloth:6: state\.set: cannot store .*function/);
  const store = await openState({ path: statePath });
  try {
    expect(await store.get("conf")).toEqual({ a: [], b: [1], c: {} });
  } finally {
    await store.close();
  }
});
