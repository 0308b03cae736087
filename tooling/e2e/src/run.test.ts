import fs from "node:fs";
import path from "node:path";
import { CLI_BIN, cleanup, REPO_ROOT, runCli, spawnNode, tempDir, waitFor } from "@sloth/testkit";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";

// `sloth-runner run` and `workflow list|show|validate` against the built
// binary, on the examples and on bad inputs. Durations vary, so they are
// replaced by <t> before comparing.
let dataDir: string;
let dir: string;
beforeEach(() => {
  dataDir = tempDir("sloth-run-data-");
  dir = tempDir("sloth-run-files-");
});
afterEach(cleanup);
afterAll(cleanup);

const env = () => ({ SLOTH_RUNNER_DATA_DIR: dataDir, CI: "" });
const sloth = (...args: string[]) => runCli(args, { env: env() });
const norm = (s: string) =>
  s
    .replace(/\b\d{8}T\d{6}-[0-9a-f]{6}\b/g, "<id>")
    .replace(/\b\d+(\.\d+)?(ms|s)\b|\b\d+m\d\ds\b/g, "<t>");
const example = (name: string) => path.join("examples", name);
function file(name: string, lua: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, lua);
  return p;
}
type Event = { type: string; task?: string; [k: string]: unknown };
const ndjson = (s: string): Event[] =>
  s
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Event);

describe("run: examples", () => {
  it("hello runs and prints ordered lines and a summary", async () => {
    const r = await sloth("run", example("hello.sloth"));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(norm(r.stdout)).toBe(
      [
        "workflow 'hello' started: 2 tasks",
        "hello: started",
        "hello | INFO Hello from Sloth Runner, task hello",
        "hello: succeeded in <t> (said hello)",
        "shell: started",
        "shell | hello from bash",
        "shell: succeeded in <t>",
        "workflow 'hello' succeeded in <t>: 2 succeeded, 0 failed, 0 skipped",
        "run id: <id>",
        "",
      ].join("\n"),
    );
  });

  it("-o json prints NDJSON events and a final summary, outputs flowing down the diamond", async () => {
    const r = await sloth("run", example("diamond.sloth"), "-o", "json");
    expect(r.code).toBe(0);
    const events = ndjson(r.stdout);
    expect(events[0]).toMatchObject({
      type: "workflow.started",
      tasks: ["fetch", "build_linux", "build_darwin", "release"],
    });
    const done = events.filter((e) => e.type === "task.succeeded").map((e) => e.task);
    expect(done[0]).toBe("fetch");
    expect(done[3]).toBe("release");
    expect(events.at(-2)?.type).toBe("workflow.completed");
    const summary = events.at(-1) as {
      type: string;
      status: string;
      workflows: Array<{ tasks: Array<{ name: string; output?: unknown }> }>;
    };
    expect(summary).toMatchObject({ type: "summary", status: "succeeded" });
    expect(summary.workflows[0]?.tasks[3]?.output).toEqual({
      released: "app-1.4.2-linux, app-1.4.2-darwin",
    });
  });

  it("--dry-run prints the plan: levels and where each task runs", async () => {
    const r = await sloth("run", example("diamond.sloth"), "--dry-run");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        "workflow 'diamond': 4 tasks, 3 levels, max parallel 4",
        "LEVEL  TASK          DEPENDS ON                 RUNS ON",
        "1      fetch         -                          local",
        "2      build_linux   fetch                      local",
        "2      build_darwin  fetch                      local",
        "3      release       build_linux, build_darwin  local",
        "",
      ].join("\n"),
    );
  });

  it("-t runs a subset with its dependencies", async () => {
    const r = await sloth("run", example("diamond.sloth"), "-t", "build_linux");
    expect(r.code).toBe(0);
    expect(norm(r.stdout).trim().split("\n").at(-2)).toBe(
      "workflow 'diamond' succeeded in <t>: 2 succeeded, 0 failed, 0 skipped",
    );
    expect(r.stdout).not.toContain("release");
  });

  it("retries a flaky command until it succeeds", async () => {
    const r = await sloth("run", example("retries.sloth"));
    expect(r.code).toBe(0);
    expect(r.stdout.match(/flaky: retrying in 200ms/g)).toHaveLength(2);
    expect(r.stdout).toContain("flaky | attempt 3: ok");
  });

  it("-v picks the environment's values", async () => {
    const prod = await sloth("run", example("values.sloth"), "-v", example("values/prod.yaml"));
    expect(prod.code).toBe(0);
    expect(prod.stdout).toContain("deploy | INFO deploying 3 replicas to prod (rolling)");
  });

  it("run_if skips; abort_if aborts the run with exit 1", async () => {
    const ok = await sloth("run", example("conditions.sloth"));
    expect(ok.code).toBe(0);
    expect(norm(ok.stdout)).toContain("ci_only: skipped: run_if is false\n");
    expect(norm(ok.stdout)).toContain("deploy: succeeded in <t> (deployed locally)\n");
    const aborted = await sloth("run", example("conditions.sloth"), "--param", "freeze=yes");
    expect(aborted.code).toBe(1);
    expect(norm(aborted.stdout).split("\n").slice(-4)).toEqual([
      "workflow 'conditions' aborted in <t>: 1 succeeded, 0 failed, 2 skipped, 1 cancelled",
      "  task 'freeze_gate' aborted the run: abort_if is true",
      "run id: <id>",
      "",
    ]);
  });

  it("fans out up to max_parallel_tasks, or --max-parallel", async () => {
    const peak = (events: Event[]) => {
      let now = 0;
      let max = 0;
      for (const e of events) {
        if (e.type === "task.started") max = Math.max(max, ++now);
        if (e.type === "task.succeeded" || e.type === "task.failed") now--;
      }
      return max;
    };
    const byConfig = await sloth("run", example("fanout.sloth"), "-o", "json");
    expect(byConfig.code).toBe(0);
    expect(peak(ndjson(byConfig.stdout))).toBe(3);
    const byFlag = await sloth("run", example("fanout.sloth"), "-o", "json", "--max-parallel", "6");
    expect(peak(ndjson(byFlag.stdout))).toBe(6);
  });

  it("runs TaskDefinitions groups in order, or one with -g", async () => {
    const all = await sloth("run", example("groups.sloth"));
    expect(all.code).toBe(0);
    const summaries = norm(all.stdout)
      .split("\n")
      .filter((l) => l.startsWith("workflow") && l.includes("succeeded in"));
    expect(summaries).toEqual([
      "workflow 'build' succeeded in <t>: 2 succeeded, 0 failed, 0 skipped",
      "workflow 'package' succeeded in <t>: 1 succeeded, 0 failed, 0 skipped",
    ]);
    const one = await sloth("run", example("groups.sloth"), "-g", "package");
    expect(one.stdout).not.toContain("compile");
    expect(one.stdout).toContain("archive: succeeded");
  });
});

describe("run: bad inputs", () => {
  // Independent invocations, a few at a time to keep the suite short.
  it("pins stderr and exit codes for every kind of bad input", async () => {
    const cases: Array<{ args: string[]; code: number; stderr: string; stdout?: string }> = [
      {
        args: [
          "run",
          file(
            "syntax.sloth",
            'local a = task("a")\n  :command("echo hi"\nworkflow.define("w"):tasks({ a })\n',
          ),
        ],
        code: 1,
        stderr: `error: ${dir}/syntax.sloth:3: ')' expected (to close '(' at line 1) near 'workflow'\n    3 | workflow.define("w"):tasks({ a })\n`,
      },
      {
        args: [
          "run",
          file(
            "method.sloth",
            'local a = task("a"):command("true"):bogus(1)\nworkflow.define("w"):tasks({ a })\n',
          ),
        ],
        code: 1,
        stderr:
          `error: ${dir}/method.sloth:1: unknown task method 'bogus' on task 'a'; valid methods: abort_if, artifacts, build, command, consumes, delegate_to, depends_on, description, on_failure, on_success, on_timeout, params, post_hook, pre_hook, retries, retry_delay, run_if, tags, timeout, workdir, workspace (aliases: on_fail, post_exec, pre_exec)\n` +
          `    1 | local a = task("a"):command("true"):bogus(1)\n`,
      },
      {
        args: ["run", file("binary.sloth", "\x7fELF\x02\x01\x01\x00\x00\x1b[2J")],
        code: 1,
        stderr: `error: cannot load ${dir}/binary.sloth: it is a binary file, not Lua; give the path of a .sloth or .lua workflow file\n`,
      },
      {
        args: ["run", file("empty.sloth", 'workflow.define("deploy"):tasks({ deploy })\n')],
        code: 1,
        stderr:
          "error: workflow 'deploy' in empty.sloth has no tasks, so there is nothing to run; list its tasks with :tasks({ ... }), checking that each variable there is defined\n",
      },
      {
        args: [
          "run",
          file(
            "cycle.sloth",
            'local a = task("a"):depends_on({ "b" }):command("true")\nlocal b = task("b"):depends_on({ "a" }):command("true")\nworkflow.define("w"):tasks({ a, b })\n',
          ),
        ],
        code: 1,
        stderr: "error: cannot run workflow 'w': dependency cycle a -> b -> a\n",
      },
      {
        args: [
          "run",
          file(
            "missing.sloth",
            'workflow.define("w"):tasks({ task("a"):depends_on({ "ghost" }):command("true") })\n',
          ),
        ],
        code: 1,
        stderr: "error: cannot run workflow 'w': task 'a' depends on unknown task 'ghost'\n",
      },
      {
        args: [
          "run",
          file(
            "nonbool.sloth",
            'workflow.define("w"):tasks({ task("a"):command(function() return { x = 1 } end) })\n',
          ),
        ],
        code: 1,
        stderr: "",
        stdout: [
          "workflow 'w' started: 1 task",
          "a: started",
          "a: failed in <t>: command returned table, expected boolean",
          "workflow 'w' failed in <t>: 0 succeeded, 1 failed, 0 skipped",
          "  ✗ a: command returned table, expected boolean",
          "run id: <id>",
          "",
        ].join("\n"),
      },
      {
        args: [
          "run",
          file(
            "two.sloth",
            'workflow.define("one"):tasks({ task("a"):command("true") })\nworkflow.define("two"):tasks({ task("b"):command("true") })\n',
          ),
        ],
        code: 1,
        stderr:
          "error: two.sloth defines several workflows: one, two; pick one with -w NAME (or -g GROUP)\n",
      },
      {
        args: ["run", path.join(dir, "two.sloth"), "-w", "three"],
        code: 1,
        stderr: "error: workflow 'three' not found in two.sloth; its workflows are: one, two\n",
      },
      {
        args: [
          "run",
          file(
            "stacks.sloth",
            'workflow.define("w"):tasks({ task("a"):command("true") }):config({ require_lock = true })\n',
          ),
        ],
        code: 1,
        stderr:
          "error: cannot run workflow 'w': require_lock needs a stack; run it as a stack's deployment (`sloth-runner run STACK -f FILE`), or remove these keys from the workflow's config\n",
      },
      {
        args: ["run", example("hello.sloth"), "-o", "yaml"],
        code: 2,
        stderr:
          'error: invalid value "yaml" for --output: choose one of "text", "json"; run `sloth-runner run --help` to see the usage\n',
      },
      {
        args: ["run", "nope.sloth"],
        code: 2,
        stderr: "error: workflow file 'nope.sloth' not found; check the path\n",
      },
      {
        args: ["run"],
        code: 2,
        stderr:
          "error: missing workflow file; run `sloth-runner run FILE` or `sloth-runner run STACK -f FILE`\n",
      },
      {
        args: ["run", "prod"],
        code: 2,
        stderr:
          "error: 'prod' is not a file, so it names a stack, and no workflow file was given; run `sloth-runner run prod -f FILE`\n",
      },
      {
        args: ["run", "prod", "-f", example("hello.sloth")],
        code: 0,
        stderr: "",
      },
      {
        args: ["run", example("hello.sloth"), "--param", "novalue"],
        code: 1,
        stderr:
          "error: invalid --param 'novalue': expected KEY=VALUE; write it as --param key=value\n",
      },
      {
        args: ["run", example("hello.sloth"), "--max-parallel", "0"],
        code: 2,
        stderr: "error: invalid --max-parallel '0': expected an integer >= 1\n",
      },
      {
        args: ["run", example("hello.sloth"), "-t", "nope"],
        code: 1,
        stderr: "error: task 'nope' not found; the tasks are: hello, shell\n",
      },
      {
        args: ["run", example("hello.sloth"), "-v", file("bad.yaml", "- just\n- a list\n")],
        code: 1,
        stderr: `error: cannot use values file '${dir}/bad.yaml': expected a mapping of names to values\n`,
      },
      {
        args: ["bogus"],
        code: 2,
        stderr:
          "error: unknown command 'bogus'; the commands are: master, agent, ca, run, runs, workflow, state, stack, scheduler, secrets, version\n",
      },
      {
        args: ["agnet", "list"],
        code: 2,
        stderr:
          "error: unknown command 'agnet'; did you mean 'agent'? the commands are: master, agent, ca, run, runs, workflow, state, stack, scheduler, secrets, version\n",
      },
      {
        args: ["events", "list"],
        code: 2,
        stderr:
          "error: unknown command 'events'; the commands are: master, agent, ca, run, runs, workflow, state, stack, scheduler, secrets, version\n",
      },
      {
        args: ["agent", "install"],
        code: 2,
        stderr:
          "error: unknown command 'agent install'; run `sloth-runner agent --help` to see its commands\n",
      },
      {
        args: ["agent", "stop"],
        code: 2,
        stderr:
          "error: missing argument to `sloth-runner agent stop`; run `sloth-runner agent stop --help` to see the usage\n",
      },
      {
        args: ["stack", "show"],
        code: 2,
        stderr:
          "error: missing argument to `sloth-runner stack show`; run `sloth-runner stack show --help` to see the usage\n",
      },
      {
        args: ["runs", "list", "--bogus"],
        code: 2,
        stderr:
          "error: unknown option: --bogus; run `sloth-runner runs list --help` to see the usage\n",
      },
      {
        args: ["run", dir],
        code: 2,
        stderr: `error: workflow file '${dir}' is a directory; give the path of a .sloth file in it\n`,
      },
      {
        args: ["run", example("hello.sloth"), "--max-parallel", "abc"],
        code: 2,
        stderr: "error: invalid --max-parallel 'abc': expected an integer >= 1\n",
      },
      {
        args: ["run", example("hello.sloth"), "-v", `${dir}/missing.yaml`],
        code: 2,
        stderr: `error: cannot read values file '${dir}/missing.yaml': no such file; check the path given with --values/-v\n`,
      },
    ];
    const results = await inBatches(cases, 4, (c) => sloth(...c.args));
    results.forEach((r, i) => {
      const c = cases[i]!;
      expect({ args: c.args, code: r.code, stderr: r.stderr }).toEqual({
        args: c.args,
        code: c.code,
        stderr: c.stderr,
      });
      if (c.stdout !== undefined) expect(norm(r.stdout)).toBe(c.stdout);
    });
  });

  it("a delegated task without a cluster token stops the run before it starts", async () => {
    const f = file(
      "delegated.sloth",
      'workflow.define("w"):tasks({ task("remote"):delegate_to("web-1"):command("true") })\n',
    );
    const r = await sloth("run", f, "-o", "json");
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "error: delegated tasks need the cluster token; pass --token-file FILE or set SLOTH_RUNNER_TOKEN (a local master keeps it in <data dir>/master/token)\n",
    });
  });

  it("SIGINT interrupts the run: exit 130, every process of the task gone", async () => {
    const f = file(
      "long.sloth",
      `workflow.define("w"):tasks({ task("long"):command("echo $$ > ${dir}/long.pid; sleep 30 & echo $! > ${dir}/long.child; wait") })\n`,
    );
    const p = spawnNode(CLI_BIN, ["run", f], { env: env(), cwd: REPO_ROOT });
    const child = path.join(dir, "long.child");
    await waitFor(() => fs.existsSync(child) && fs.readFileSync(child, "utf8").trim() !== "", {
      what: "the task's pid files",
    });
    p.kill("SIGINT");
    expect(await p.exited).toBe(130);
    expect(norm(p.stdout()).split("\n").slice(-5)).toEqual([
      "long: cancelled: interrupted by SIGINT",
      "workflow 'w' interrupted in <t>: 0 succeeded, 0 failed, 0 skipped, 1 cancelled",
      "  interrupted by SIGINT",
      "run id: <id>",
      "",
    ]);
    for (const pidFile of ["long.pid", "long.child"]) {
      const pid = Number(fs.readFileSync(path.join(dir, pidFile), "utf8"));
      await waitFor(() => !running(pid), { what: `process ${pid} to end` });
    }
  });
});

describe("run: SIGTERM", () => {
  it("kills exec.run children of Lua tasks and exits 143", async () => {
    const pidFile = path.join(dir, "lua.pid");
    const f = file(
      "lua-exec.sloth",
      `workflow.define("w"):tasks({ task("lua"):command(function() exec.run("echo $$ > ${pidFile}; sleep 30") return true end) })\n`,
    );
    const p = spawnNode(CLI_BIN, ["run", f], { env: env(), cwd: REPO_ROOT });
    await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").trim() !== "", {
      what: "the exec.run pid file",
    });
    // The child runs as soon as it is spawned; give the worker a moment to
    // record its pid (a signal in that instant would miss the child).
    await new Promise((r) => setTimeout(r, 300));
    p.kill("SIGTERM");
    expect(await p.exited).toBe(143);
    expect(p.stdout()).toContain("lua: cancelled: interrupted by SIGTERM\n");
    const pid = Number(fs.readFileSync(pidFile, "utf8"));
    await waitFor(() => !running(pid), { what: `process ${pid} to end` });
  });
});

describe("run: workflow hooks", () => {
  it("shows the hooks' output under the workflow's name, and as workflow.log events", async () => {
    const f = file(
      "hooks.sloth",
      `local t1 = task("t1"):command("echo one")
workflow.define("wf"):tasks({ t1 })
  :on_task_start(function(name) log.info("starting " .. name) end)
  :on_complete(function(ok) print("done", ok) end)
`,
    );
    const text = await sloth("run", f, "--no-history");
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("wf | INFO starting t1\n");
    expect(text.stdout).toContain("wf | done\ttrue\n");
    expect(text.stderr).toBe("");
    const json = await sloth("run", f, "--no-history", "-o", "json");
    const events = json.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; workflow?: string; text?: string });
    expect(events.filter((e) => e.type === "workflow.log").map((e) => e.text)).toEqual([
      "INFO starting t1\n",
      "done\ttrue\n",
    ]);
  });
});

describe("run: several values files", () => {
  it("merges them in order: mappings key by key, later files win", async () => {
    const f = file(
      "merged.sloth",
      `workflow.define("m"):tasks({ task("t"):command(function() return true, values.env .. " " .. values.db.host .. ":" .. values.db.port .. " " .. #values.list end) })\n`,
    );
    const a = file("a.yaml", "env: prod\ndb:\n  host: a\n  port: 5432\nlist: [1, 2]\n");
    const b = file("b.json", '{"db": {"host": "b"}, "list": [3]}');
    const r = await sloth("run", f, "-v", a, "-v", b);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("t: succeeded in");
    expect(r.stdout).toContain("(prod b:5432 1)");
  });
});

describe("run: the reader of the output goes away (| head -1)", () => {
  it("stops the run as SIGTERM would, exit 141 as for SIGPIPE, with no EPIPE stack trace", async () => {
    const pidFile = path.join(dir, "chatty.pid");
    const f = file(
      "chatty.sloth",
      `workflow.define("w"):tasks({ task("chatty"):command("echo $$ > ${pidFile}; while true; do seq 1 1000; sleep 0.01; done") })\n`,
    );
    const p = spawnNode(CLI_BIN, ["run", f], { env: env(), cwd: REPO_ROOT });
    await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").trim() !== "", {
      what: "the task to start",
    });
    // What `| head -1` does once it has its line.
    p.child.stdout?.destroy();
    expect(await p.exited).toBe(141);
    expect(p.stderr()).not.toMatch(/EPIPE|Error:|at .*\(/);
    const pid = Number(fs.readFileSync(pidFile, "utf8"));
    await waitFor(() => !running(pid), { what: `process ${pid} to end` });
  });
});

describe("run: SIGHUP (the terminal or SSH session closed)", () => {
  it("cancels the run like SIGINT: exit 129, shell and exec.run children gone", async () => {
    const luaPid = path.join(dir, "hup-lua.pid");
    const shPid = path.join(dir, "hup-sh.pid");
    const f = file(
      "hup.sloth",
      `workflow.define("w"):tasks({
  task("sh"):command("sleep 30 & echo $! > ${shPid}; wait"),
  task("lua"):command(function() exec.run("echo $$ > ${luaPid}; sleep 30") return true end),
})\n`,
    );
    const p = spawnNode(CLI_BIN, ["run", f], { env: env(), cwd: REPO_ROOT });
    const written = (f: string) => fs.existsSync(f) && fs.readFileSync(f, "utf8").trim() !== "";
    await waitFor(() => written(luaPid) && written(shPid), { what: "the tasks' pid files" });
    await new Promise((r) => setTimeout(r, 300));
    p.kill("SIGHUP");
    expect(await p.exited).toBe(129);
    expect(p.stdout()).toContain("interrupted by SIGHUP");
    for (const pidFile of [luaPid, shPid]) {
      const pid = Number(fs.readFileSync(pidFile, "utf8"));
      await waitFor(() => !running(pid), { what: `process ${pid} to end` });
    }
  });
});

describe("workflow list|show|validate", () => {
  it("list, show and validate, as text and JSON", async () => {
    const [list, listJson, show, valid, invalid] = await Promise.all([
      sloth("workflow", "list", example("groups.sloth")),
      sloth("workflow", "list", example("hello.sloth"), "--json"),
      sloth("workflow", "show", example("diamond.sloth"), "--json"),
      sloth("workflow", "validate", example("fanout.sloth")),
      sloth(
        "workflow",
        "validate",
        file(
          "cycle.sloth",
          'workflow.define("w"):tasks({ task("a"):depends_on("b"), task("b"):depends_on("a") })\n',
        ),
        "--json",
      ),
    ]);
    expect(list).toEqual({
      code: 0,
      stderr: "",
      stdout:
        "NAME     KIND   TASKS  DESCRIPTION\nbuild    group  2      Compile and test\npackage  group  1      Package the result\n",
    });
    expect(JSON.parse(listJson.stdout)).toEqual([
      {
        name: "hello",
        kind: "workflow",
        description: "Say hello twice",
        version: null,
        tasks: ["hello", "shell"],
      },
    ]);
    const [diamond] = JSON.parse(show.stdout) as Array<{
      levels: string[][];
      tasks: Array<{ name: string; command: string }>;
    }>;
    expect(diamond?.levels).toEqual([["fetch"], ["build_linux", "build_darwin"], ["release"]]);
    expect(diamond?.tasks.map((t) => t.command)).toEqual([
      "function",
      "function",
      "function",
      "function",
    ]);
    expect(valid).toEqual({
      code: 0,
      stderr: "",
      stdout: "examples/fanout.sloth: valid (1 workflow, 8 tasks)\n",
    });
    expect(invalid.code).toBe(1);
    expect(JSON.parse(invalid.stdout)).toMatchObject({
      ok: false,
      problems: [
        {
          code: "SLOTH_DSL_INVALID",
          message: `${dir}/cycle.sloth:1: dependency cycle a -> b -> a in 'w'`,
        },
      ],
    });
  });
});

/** Maps with at most `width` calls in flight: a busy 2-core machine must not time out. */
async function inBatches<T, R>(
  items: T[],
  width: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) {
    out.push(...(await Promise.all(items.slice(i, i + width).map(fn))));
  }
  return out;
}

/** Alive and not a zombie (a container's init may never reap). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}
