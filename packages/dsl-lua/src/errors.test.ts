import { afterAll, describe, expect, it } from "vitest";
import { type DslError, isSlothError } from "./index.js";
import { shutdownLuaWorkers } from "./pool.js";
import { loadFile, runCommand, tempDir } from "./test-helpers.js";

const tmp = tempDir();
afterAll(async () => {
  tmp.cleanup();
  await shutdownLuaWorkers();
});

async function loadError(text: string, name = "bad.sloth"): Promise<DslError> {
  const err = await loadFile(tmp.write(name, text)).catch((e: unknown) => e);
  if (!isSlothError(err)) throw new Error(`expected a Sloth error, got ${String(err)}`);
  return err as DslError;
}

async function commandOf(body: string) {
  const file = tmp.write(
    "cmd.sloth",
    `workflow.define("w"):tasks({\n  task("t"):command(function(params, deps)\n${body}\n  end)\n})\n`,
  );
  const [w] = (await loadFile(file)).workflows;
  return runCommand(w!.tasks[0]!);
}

describe("load errors", () => {
  it("reports a syntax error with file, line and the offending line", async () => {
    const err = await loadError(`local ok = 1\nlocal x = = 2\n`, "syntax.sloth");
    expect(err.code).toBe("SLOTH_LUA_SYNTAX");
    expect(err.message).toMatch(
      /^(.*\/)?syntax\.sloth:2: unexpected symbol near '='\n {4}2 \| local x = = 2$/,
    );
    expect(err.location).toMatchObject({ line: 2, sourceLine: "local x = = 2" });
  });

  it("reports a runtime error at the top level", async () => {
    const err = await loadError(`local t = nil\n\nprint(t.field)\n`);
    expect(err.code).toBe("SLOTH_LUA_RUNTIME");
    expect(err.message).toMatch(
      /bad\.sloth:3: attempt to index a nil value \(local 't'\)\n {4}3 \| print\(t\.field\)/,
    );
  });

  it("reports an error raised in a required file at its own line", async () => {
    tmp.write("broken.lua", `local M = {}\nerror("broken module")\nreturn M\n`);
    const err = await loadError(`local m = require("broken")\n`);
    expect(err.message).toMatch(/broken\.lua:2: broken module\n {4}2 \| error\("broken module"\)/);
  });

  it("reports a syntax error in a required file at its own line", async () => {
    tmp.write("badsyntax.lua", `local M = {}\nM.x = = 1\nreturn M\n`);
    const err = await loadError(`local m = require("badsyntax")\n`);
    expect(err.code).toBe("SLOTH_LUA_RUNTIME");
    expect(err.message).toMatch(
      /badsyntax\.lua:2: unexpected symbol near '='\n {4}2 \| M\.x = = 1/,
    );
  });

  it("reports a missing file", async () => {
    const err = (await loadFile(`${tmp.dir}/nope.sloth`).catch((e: unknown) => e)) as DslError;
    expect(err.code).toBe("SLOTH_DSL_FILE");
    expect(err.message).toMatch(/cannot read workflow file .*nope\.sloth: no such file/);
  });

  it("stops a top level that never ends", async () => {
    const file = tmp.write("spin.sloth", "while true do end");
    const err = (await loadFile(file, { loadTimeoutMs: 500 }).catch((e: unknown) => e)) as DslError;
    expect(err.code).toBe("SLOTH_LUA_WORKER");
    expect(err.message).toBe(`cannot load ${file}: its top-level code ran for more than 500 ms`);
    expect(err.hint).toMatch(/top-level code runs when the file is loaded/);
  });
});

describe("calling convention", () => {
  it("no return value is success", async () => {
    const out = await commandOf("local x = 1");
    expect(out).toMatchObject({ ok: true });
    expect(out.message).toBeUndefined();
    expect(out.output).toBeUndefined();
  });

  it("true, message, output", async () => {
    expect(await commandOf(`return true, "built", { files = { "a", "b" }, n = 2 }`)).toMatchObject({
      ok: true,
      message: "built",
      output: { files: ["a", "b"], n: 2 },
    });
  });

  it("false, message is a failure", async () => {
    expect(await commandOf(`return false, "disk full"`)).toMatchObject({
      ok: false,
      message: "disk full",
    });
  });

  it("nil, message is a failure; nil alone is success", async () => {
    expect(await commandOf(`return nil, "not found"`)).toMatchObject({
      ok: false,
      message: "not found",
    });
    expect(await commandOf(`return nil`)).toMatchObject({ ok: true });
  });

  it("a non-boolean first value fails without retry", async () => {
    expect(await commandOf(`return { ok = true }`)).toMatchObject({
      ok: false,
      message: "command returned table, expected boolean",
      retryable: false,
    });
    expect(await commandOf(`return "yes"`)).toMatchObject({
      message: "command returned string, expected boolean",
    });
  });

  it("an output that is not a table fails", async () => {
    expect(await commandOf(`return true, "m", 42`)).toMatchObject({
      ok: false,
      message: "command returned number as its output, expected a table with named fields",
    });
  });

  it("error() fails with the message, file and line", async () => {
    const out = await commandOf(`    error("deploy failed")`);
    expect(out.ok).toBe(false);
    expect(out.message).toMatch(/cmd\.sloth:3: deploy failed\n {4}3 \| error\("deploy failed"\)/);
  });

  it("a runtime error and an error with a table value carry the line", async () => {
    const out = await commandOf(`    local x = nil\n    return x.y`);
    expect(out.message).toMatch(/cmd\.sloth:4: attempt to index a nil value \(local 'x'\)/);
    const t = await commandOf(`    error({ code = 7 })`);
    expect(t.message).toMatch(/(^|\/)cmd\.sloth:3: \{"code":7\}/);
  });

  it("a function in the output fails", async () => {
    const out = await commandOf(`return true, "m", { f = print }`);
    expect(out).toMatchObject({ ok: false });
    expect(out.message).toMatch(/cannot encode a function at return value 3\.f/);
  });

  it("receives params and deps", async () => {
    const file = tmp.write(
      "args.sloth",
      `workflow.define("w"):tasks({ task("t"):params({ a = 1 }):command(function(params, deps)
  return true, params.task_name .. " " .. params.a .. " " .. params.extra .. " " .. deps.up.v
end) })`,
    );
    const t = (await loadFile(file)).workflows[0]!.tasks[0]!;
    const out = await runCommand(t, {
      params: { a: 1, extra: "x" },
      deps: { up: { v: "y", nothing: null } },
    });
    expect(out).toMatchObject({ ok: true, message: "t 1 x y" });
  });
});
