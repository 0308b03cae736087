import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { shutdownLuaWorkers } from "./pool.js";
import { loadFile, runCommand, tempDir } from "./test-helpers.js";

const tmp = tempDir();
afterAll(async () => {
  tmp.cleanup();
  await shutdownLuaWorkers();
});

/** `{ n = { n = ... { n = "leaf" } } }`, `depth` tables deep. */
function nested(depth: number): Record<string, unknown> {
  let v: Record<string, unknown> = { n: "leaf" };
  for (let i = 1; i < depth; i++) v = { n: v };
  return v;
}

async function only(body: string, values?: Record<string, unknown>) {
  const file = tmp.write(`v-${Math.random().toString(36).slice(2)}.sloth`, body);
  const [w] = (await loadFile(file, values ? { values: values as never } : {})).workflows;
  return w!.tasks[0]!;
}

describe("values crossing into Lua and back", () => {
  it("answers integer keys that came through JSON as strings (Lua keys, YAML number keys)", async () => {
    const t = await only(
      `workflow.define("w"):tasks({ task("t"):command(function(params, deps)
  local n = 0
  for k in pairs(deps.p.sparse) do n = n + 1 end
  return true, table.concat({ deps.p.sparse[3], deps.p.ports[8080], values[9], tostring(deps.p.sparse[2]), deps.p.text["x"], n }, " ")
end) })`,
      { "9": "nine" },
    );
    const r = await runCommand(t, {
      deps: {
        p: {
          sparse: { "1": "a", "3": "c" },
          ports: { "8080": "web" },
          text: { x: "y", "01": "z" },
        },
      },
    });
    expect(r).toMatchObject({ ok: true, message: "c web nine nil y 2" });
  });

  it("prints such tables as JSON and takes them as plain tables", async () => {
    const t = await only(
      `workflow.define("w"):tasks({ task("t"):command(function(params, deps)
  log.info(deps.p.ports)
  return true
end) })`,
    );
    const r = await runCommand(t, { deps: { p: { ports: { "8080": "web" } } } });
    expect(r.log).toBe('INFO {"8080":"web"}\n');
  });

  it("keeps empty lists as lists: JSON and YAML, deps, values, json.array; {} stays an object", async () => {
    const t = await only(
      `workflow.define("w"):tasks({ task("t"):command(function(params, deps)
  local conf = json.decode('{"hosts":[],"opts":{},"nested":[[],{"x":[]}]}')
  local y = yaml.decode("items: []\\nmap: {}\\n")
  local grown = json.decode("[]")
  table.insert(grown, "a")
  log.info(deps.p.tags, #deps.p.tags, values.empty)
  return true, json.encode(conf) .. " " .. yaml.encode(y):gsub("\\n", ";"), {
    conf = conf, y = y, tags = deps.p.tags, values = values.empty, marked = json.array(),
    filled = json.array({ 1, 2 }), grown = grown, plain = {}, top = json.decode("[]"),
  }
end) })`,
      { empty: [] },
    );
    const r = await runCommand(t, { deps: { p: { tags: [] } } });
    expect(r.ok).toBe(true);
    expect(r.message).toBe('{"hosts":[],"nested":[[],{"x":[]}],"opts":{}} items: [];map: {};');
    expect(r.log).toBe("INFO [] 0 []\n");
    expect(r.output).toEqual({
      conf: { hosts: [], opts: {}, nested: [[], { x: [] }] },
      y: { items: [], map: {} },
      tags: [],
      values: [],
      marked: [],
      filled: [1, 2],
      grown: ["a"],
      plain: {},
      top: [],
    });
  });

  it("keeps user data that looks like the empty-list marker, lists deeper than 200, and tostring", async () => {
    const deep = "[".repeat(205) + "]".repeat(205);
    const t = await only(`workflow.define("w"):tasks({ task("t"):command(function()
  local d = json.decode(${JSON.stringify(deep)})
  local x = d
  for i = 1, 204 do x = x[1] end
  return true, json.encode(json.decode('{"__sloth_empty_array":true}')) .. " " .. tostring(next(x)) .. " " .. tostring(json.decode("[]")):match("^table: ") , { d = d }
end) })`);
    const r = await runCommand(t);
    expect(r.message).toBe('{"__sloth_empty_array":true} nil table: ');
    expect(JSON.stringify(r.output?.d)).toBe(deep);
  });

  it("refuses json.array on what is not a plain table", async () => {
    const t = await only(`workflow.define("w"):tasks({ task("t"):command(function()
  return true, select(2, pcall(json.array, 3)) .. " | " .. select(2, pcall(json.array, setmetatable({}, {})))
end) })`);
    expect((await runCommand(t)).message).toBe(
      "json.array expects a table, got number | json.array expects a plain table",
    );
  });

  it("leaves require('stack') to the workflow's own stack.lua", async () => {
    tmp.write(
      "stack.lua",
      "local M = {} function M.push(t, v) t[#t + 1] = v return #t end return M",
    );
    const t = await only(
      `local st = require("stack")
workflow.define("w"):tasks({ task("t"):command(function()
  return true, tostring(st.push({}, 1)) .. " " .. tostring(stack.name)
end) })`,
    );
    expect(await runCommand(t)).toMatchObject({ ok: true, message: "1 nil" });
  });

  it("keeps data nested hundreds of levels deep, in deps and values alike", async () => {
    const t = await only(
      `workflow.define("w"):tasks({ task("t"):command(function(params, deps)
  local d, n = deps.p.d, 0
  while type(d) == "table" do d = d.n; n = n + 1 end
  local v, m = values.v, 0
  while type(v) == "table" do v = v.n; m = m + 1 end
  return true, n .. " " .. m .. " " .. d, { back = deps.p.d }
end) })`,
      { v: nested(200) },
    );
    const deep = nested(300);
    const r = await runCommand(t, { deps: { p: { d: deep } } });
    expect(r).toMatchObject({ ok: true, message: "300 200 leaf" });
    expect(r.output?.back).toEqual(deep);
  });

  it("keeps integers beyond 2^53 as (approximate) numbers instead of wrapping them negative", async () => {
    const t = await only(`workflow.define("w"):tasks({ task("t"):command(function(params, deps)
  local d = json.decode("12345678901234567890")
  return true, tostring(d > 0) .. " " .. tostring(deps.p.big > 0), { maxint = math.maxinteger, d = d }
end) })`);
    const r = await runCommand(t, { deps: { p: { big: 2 ** 63 } } });
    expect(r.message).toBe("true true");
    expect(r.output?.maxint).toBeGreaterThan(9.2e18);
    expect(r.output?.d).toBe(Number("12345678901234567890"));
  });

  it("keeps NUL bytes in strings both ways: exec output, files, outputs", async () => {
    const out = join(tmp.dir, "nul.out");
    const t = await only(`workflow.define("w"):tasks({ task("t"):command(function(params, deps)
  local s = exec.run("printf 'a\\\\0b\\\\0c'").stdout
  fs.write(${JSON.stringify(out)}, "abc\\0def")
  return true, tostring(#s) .. " " .. tostring(#deps.p.s), { s = s, echo = deps.p.s }
end) })`);
    const r = await runCommand(t, { deps: { p: { s: "x\0y" } } });
    expect(r.message).toBe("5 3");
    expect(r.output).toEqual({ s: "a\0b\0c", echo: "x\0y" });
    expect(readFileSync(out, "utf8")).toBe("abc\0def");
  });
});
