import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import type { Value } from "@sloth/workflow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { shutdownLuaWorkers } from "./pool.js";
import { loadFile, runCommand, tempDir } from "./test-helpers.js";

const tmp = tempDir();
let server: Server;
let base = "";
beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          method: req.method,
          url: req.url,
          body,
          type: req.headers["content-type"] ?? null,
          list: [],
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  base = typeof addr === "object" && addr ? `http://127.0.0.1:${addr.port}` : "";
});
afterAll(async () => {
  tmp.cleanup();
  await new Promise((r) => server.close(r));
  await shutdownLuaWorkers();
});

let n = 0;
/** Runs `body` as a task command with the temp dir as workdir. */
async function run(
  body: string,
  opts: { values?: Record<string, Value>; params?: Record<string, Value> } = {},
) {
  const file = tmp.write(
    `m${n++}.sloth`,
    `workflow.define("w"):tasks({ task("t"):command(function(params, deps)\n${body}\nend) })\n`,
  );
  const [w] = (await loadFile(file, opts)).workflows;
  return runCommand(w!.tasks[0]!, { workdir: tmp.dir });
}

describe("modules", () => {
  it("fs works on the real file system, relative to the workdir", async () => {
    const out = await run(`
      fs.mkdir("d/e")
      fs.write("d/e/a.txt", "one\\n")
      fs.append("d/e/a.txt", "two\\n")
      fs.copy("d", "c")
      fs.rename("c/e/a.txt", "c/e/b.txt")
      local tmpname = fs.tmpname()
      return true, fs.read("c/e/b.txt"), {
        exists = fs.exists("d/e/a.txt"), gone = fs.exists("nope"), dir = fs.is_dir("d"), file = fs.is_file("d"),
        ls = fs.ls("c/e"), size = fs.size("d/e/a.txt"), tmp = type(tmpname) == "string" and not fs.exists(tmpname),
      }`);
    expect(out).toMatchObject({
      ok: true,
      message: "one\ntwo\n",
      output: {
        exists: true,
        gone: false,
        dir: true,
        file: false,
        ls: ["b.txt"],
        size: 8,
        tmp: true,
      },
    });
    expect(readFileSync(join(tmp.dir, "d/e/a.txt"), "utf8")).toBe("one\ntwo\n");
    const rm = await run(`fs.rm("c") return true, tostring(fs.exists("c"))`);
    expect(rm.message).toBe("false");
  });

  it("fs errors name the path and the script line", async () => {
    const out = await run(`  local x = fs.read("missing.txt")`);
    expect(out.ok).toBe(false);
    expect(out.message).toMatch(
      /m\d+\.sloth:2: cannot read 'missing\.txt': no such file or directory\n {4}2 \| local x = fs\.read/,
    );
  });

  it("io reads and writes real files; stdin and popen point elsewhere", async () => {
    writeFileSync(join(tmp.dir, "in.txt"), "alpha\nbeta\n42\n");
    const out = await run(`
      local f = assert(io.open("out.txt", "w"))
      f:write("x=", 1, "\\n")
      f:close()
      local lines = {}
      for line in io.lines("in.txt") do lines[#lines + 1] = line end
      local g = io.open("in.txt")
      local first = g:read("l"); local rest = g:read("a")
      local missing, err = io.open("nope.txt")
      io.write("to the log\\n")
      local ok1, e1 = pcall(io.read)
      local ok2, e2 = pcall(io.popen, "ls")
      return true, first, { lines = lines, rest = rest, missing = missing == nil, err = err, e1 = e1, e2 = e2 }`);
    expect(out.output).toMatchObject({
      lines: ["alpha", "beta", "42"],
      rest: "beta\n42\n",
      missing: true,
      err: "cannot read 'nope.txt': no such file or directory",
    });
    expect(String(out.output?.e1)).toMatch(/io\.read: tasks have no standard input/);
    expect(String(out.output?.e2)).toMatch(/use exec\.run\(cmd\)/);
    expect(out.message).toBe("alpha");
    expect(out.log).toBe("to the log\n");
    expect(readFileSync(join(tmp.dir, "out.txt"), "utf8")).toBe("x=1\n");
  });

  it("json and yaml encode and decode", async () => {
    const out = await run(`
      local s = json.encode({ list = { 1, 2, 3 }, name = "x", nested = { ok = true } })
      local back = json.decode('{"a":[1,{"b":null}],"c":"d"}')
      local y = yaml.encode({ items = { "a", "b" } })
      local yb = yaml.decode("k: v\\nn: 3\\nl: [1, 2]\\n")
      return true, s, { back = back, y = y, yb = yb, pretty = json.encode({ a = 1 }, { indent = 2 }) }`);
    expect(JSON.parse(out.message ?? "")).toEqual({
      list: [1, 2, 3],
      name: "x",
      nested: { ok: true },
    });
    expect(out.output).toEqual({
      back: { a: [1, {}], c: "d" },
      y: "items:\n  - a\n  - b\n",
      yb: { k: "v", n: 3, l: [1, 2] },
      pretty: '{\n  "a": 1\n}',
    });
  });

  it("template renders variables and rejects unknown ones", async () => {
    writeFileSync(join(tmp.dir, "t.tpl"), "host={{ host }}");
    const out = await run(`
      local a = template.render("Hello {{ name }} from {{ site.region }}: {{ n }}", { name = "Ann", site = { region = "eu" }, n = 3 })
      local ok, err = pcall(template.render, "{{ nope }}", {})
      return true, a, { err = err, file = template.render_file("t.tpl", { host = "h1" }) }`);
    expect(out.message).toBe("Hello Ann from eu: 3");
    expect(out.output).toMatchObject({ file: "host=h1" });
    expect(String(out.output?.err)).toMatch(/template: unknown variable 'nope'/);
  });

  it("refuses what standard Lua and the shell would: bad input to os, exec, env, template", async () => {
    mkdirSync(join(tmp.dir, "full/inner"), { recursive: true });
    writeFileSync(join(tmp.dir, "full/inner/f"), "x");
    mkdirSync(join(tmp.dir, "empty"), { recursive: true });
    const out = await run(`
      local r1, e1 = os.remove("full")
      local r2 = os.remove("empty")
      local ok3, e3 = pcall(exec.run, "true", { workdir = "nowhere" })
      local ok4, e4 = pcall(env.set, "FOO", nil)
      local ok5, e5 = pcall(env.set, "A=B", "x")
      local ok6, e6 = pcall(template.render, "{{ constructor }}", {})
      local first = template.render("{{ hosts.1 }}", { hosts = { "web-1", "web-2" } })
      local hup = exec.run("kill -HUP $$").exit_code
      local ok7, e7 = pcall(time.sleep, nil)
      return true, "", { r1 = tostring(r1), e1 = e1, r2 = r2, e3 = e3, e4 = e4, e5 = e5, e6 = e6, first = first, hup = hup, e7 = e7 }`);
    expect(out.output).toMatchObject({
      r1: "nil",
      e1: "full: Directory not empty",
      r2: true,
      first: "web-1",
      hup: 129,
    });
    expect(existsSync(join(tmp.dir, "full/inner/f"))).toBe(true);
    expect(existsSync(join(tmp.dir, "empty"))).toBe(false);
    expect(String(out.output?.e3)).toMatch(/exec\.run: workdir '.*nowhere' does not exist/);
    expect(String(out.output?.e4)).toMatch(
      /env\.set: the value of 'FOO' must be a string or a number, got nil/,
    );
    expect(String(out.output?.e5)).toMatch(/env\.set: expected a variable name without '='/);
    expect(String(out.output?.e6)).toMatch(/template: unknown variable 'constructor'/);
    expect(String(out.output?.e7)).toMatch(/time\.sleep expects seconds or a duration/);
  });

  it("a module of the original tool's documents that is not here says so", async () => {
    const out = await run(`local r = docker.run("alpine") return true`);
    expect(out.ok).toBe(false);
    expect(out.message).toMatch(
      /attempt to index a nil value \(global 'docker'\): there is no 'docker' module here; run the tool from a command instead, e\.g\. exec\.run\("docker \.\.\."\)/,
    );
    // Where there is something better than the tool's name, the hint says it.
    const net = await run(`local r = net.get("http://x") return true`);
    expect(net.message).toMatch(/there is no 'net' module here; use the http module for requests/);
    const systemd = await run(`systemd.restart("nginx") return true`);
    expect(systemd.message).toMatch(
      /there is no 'systemd' module here; run exec\.run\("systemctl \.\.\."\)/,
    );
    const git = await run(`local g = require("git") return true`);
    expect(git.message).toMatch(/module 'git' not found; tried .*: there is no 'git' module here/);
  });

  it("exec.run returns stdout, stderr, exit code; honours workdir, env and timeout", async () => {
    mkdirSync(join(tmp.dir, "sub"), { recursive: true });
    const out = await run(`
      local a = exec.run("echo out; echo err >&2; exit 3")
      local b = exec.run("pwd; echo $GREETING", { workdir = "sub", env = { GREETING = "hi" } })
      local t0 = time.now_ms()
      local c = exec.run("sleep 5", { timeout = 0.3 })
      return true, "", { a = a, b = b.stdout, c = c, took = time.now_ms() - t0 }`);
    expect(out.output?.a).toEqual({
      stdout: "out\n",
      stderr: "err\n",
      exit_code: 3,
      success: false,
      timed_out: false,
    });
    expect(out.output?.b).toBe(`${join(tmp.dir, "sub")}\nhi\n`);
    expect(out.output?.c).toMatchObject({ success: false, timed_out: true });
    expect(out.output?.took).toBeLessThan(3000);
  });

  it("env is per task, and visible to exec.run", async () => {
    const out = await run(`
      env.set("SLOTH_DSL_TEST", "v1")
      return true, exec.run("echo $SLOTH_DSL_TEST $SLOTH_TASK $SLOTH_RUN_ID").stdout, { d = env.get("SLOTH_DSL_NOPE", "dflt"), os = os.getenv("SLOTH_DSL_TEST") }`);
    expect(out).toMatchObject({ message: "v1 t test\n", output: { d: "dflt", os: "v1" } });
    const next = await run(`return true, tostring(env.get("SLOTH_DSL_TEST"))`);
    expect(next.message).toBe("nil");
  });

  it("http gets and posts", async () => {
    const out = await run(`
      local g = http.get("${base}/x?y=1")
      local p = http.post("${base}/p", { a = 1 })
      local ok, err = pcall(http.get, "http://127.0.0.1:1/")
      local function fetch_it()
        local r = http.get("http://127.0.0.1:1/x")
        return r
      end
      local ok2, err2 = pcall(function()
        local r = fetch_it()
        return r
      end)
      local e = http.post("${base}/e", json.array())
      return true, "", { g = g.json, status = g.status, p = p.json, err = tostring(err), e = e.json.body, list = json.encode(g.json.list), err2 = tostring(err2) }`);
    expect(out.output).toMatchObject({
      g: { method: "GET", url: "/x?y=1", list: [] },
      e: "[]",
      list: "[]",
      status: 200,
      p: { method: "POST", body: '{"a":1}', type: "application/json" },
    });
    expect(String(out.output?.err)).toMatch(/cannot reach http:\/\/127\.0\.0\.1:1\//);
    // Named at the line of the call, inside the helper that made it.
    expect(String(out.output?.err2)).toMatch(
      /m\d+\.sloth:7: cannot reach http:\/\/127\.0\.0\.1:1\/x/,
    );
  });

  it("time, log, print, values, params and the Lua 5.1 shims", async () => {
    const out = await run(
      `
      local t0 = time.now()
      time.sleep(0.2)
      print("p", 1, nil)
      log.info("info", { a = 1 })
      log.warn("careful\\n")
      warn("@on")
      warn("odd ", "thing")
      local f = loadstring("return 1 + 1")
      return true, values.env .. " " .. _G.params.mode, { slept = time.now() - t0 >= 0.19, shim = f() + unpack({ 1, 2 }), getn = table.getn({ 1, 2, 3 }), maxn = table.maxn({ [7] = 1 }), mod = math.mod(7, 3) }`,
      { values: { env: "prod" }, params: { mode: "fast" } },
    );
    expect(out).toMatchObject({
      ok: true,
      message: "prod fast",
      output: { slept: true, shim: 3, getn: 3 },
    });
    expect(out.log).toBe('p\t1\tnil\nINFO info {"a":1}\nWARN careful\nLua warning: odd thing\n');
  });

  it("require, dofile and loadfile resolve against the workflow file", async () => {
    mkdirSync(join(tmp.dir, "lib"), { recursive: true });
    writeFileSync(
      join(tmp.dir, "lib", "util.lua"),
      `local M = {}\nfunction M.twice(x) return x * 2 end\nreturn M\n`,
    );
    writeFileSync(join(tmp.dir, "conf.lua"), `return { port = 8080 }\n`);
    const out = await run(`
      local util = require("lib.util")
      local conf = dofile("conf.lua")
      local again = loadfile("conf.lua")()
      local j = require("json")
      local ok, err = pcall(require, "nope.mod")
      return true, "", { v = util.twice(21), port = conf.port + again.port, same = j == json, err = err }`);
    expect(out.output).toMatchObject({ v: 42, port: 16160, same: true });
    expect(String(out.output?.err)).toMatch(/module 'nope\.mod' not found; tried .*nope\/mod\.lua/);
    expect(existsSync(join(tmp.dir, "lib", "util.lua"))).toBe(true);
  });

  it("lists the files the top level read with require and dofile as sources", async () => {
    mkdirSync(join(tmp.dir, "src", "lib"), { recursive: true });
    writeFileSync(join(tmp.dir, "src", "lib", "a.lua"), "return 1\n");
    writeFileSync(join(tmp.dir, "src", "b.lua"), "return 2\n");
    const file = tmp.write(
      "src/sourced.sloth",
      `local a = require("lib.a")
local b = dofile("b.lua")
local c = require("lib.a")
workflow.define("w"):tasks({ task("t"):command(function() return true end) })`,
    );
    const loaded = await loadFile(file);
    expect(loaded.sources).toEqual([
      join(tmp.dir, "src", "b.lua"),
      join(tmp.dir, "src", "lib", "a.lua"),
    ]);
  });

  it("refuses slow calls inside a script's own coroutine", async () => {
    const out = await run(`
      local co = coroutine.wrap(function() local r = time.sleep(0.01); return r end)
      local ok, err = pcall(co)
      return true, tostring(err)`);
    expect(out.message).toMatch(
      /m\d+\.sloth:\d+: slow calls \(exec\.run, time\.sleep, http, \.\.\.\) cannot run inside a coroutine/,
    );
  });

  it("os.exit is an error; os.execute runs a command", async () => {
    const out = await run(`
      local ok, err = pcall(os.exit, 1)
      local a = os.execute("true")
      local b, why, code = os.execute("exit 4")
      return true, tostring(err), { a = a, b = tostring(b), code = code }`);
    expect(out.message).toMatch(/os\.exit is not allowed/);
    expect(out.output).toEqual({ a: true, b: "nil", code: 4 });
  });
});

describe("the stack global without the stack module", () => {
  it("has no name and says where the module works", async () => {
    const file = tmp.write(
      "stub.sloth",
      `local N = stack.name or "none"
workflow.define("w"):tasks({ task("t"):command(function() stack.state() return true end) })`,
    );
    const [w] = (await loadFile(file)).workflows;
    const r = await runCommand(w!.tasks[0]!);
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(
      /stub\.sloth:2: stack\.state: the stack module works in the tasks of `sloth-runner run STACK -f FILE`, run where the CLI runs: not in tasks delegated to agents, nor when a file is only inspected\n/,
    );
  });
});
