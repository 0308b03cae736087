import fs from "node:fs";
import path from "node:path";
import { CLI_BIN, cleanup, runCli, spawnNode, tempDir, waitFor } from "@sloth/testkit";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";

// `sloth-runner stack ...` and `run STACK -f FILE`, against the built binary,
// with a private data dir (stacks.db) per test.
let dataDir: string;
let dir: string;
beforeEach(() => {
  dataDir = tempDir("sloth-stack-data-");
  dir = tempDir("sloth-stack-files-");
});
afterEach(cleanup);
afterAll(cleanup);

const sloth = (...args: string[]) => runCli(["--data-dir", dataDir, ...args], { env: { CI: "" } });
const json = async (...args: string[]) => {
  const r = await sloth(...args, "--json");
  expect(r.stderr).toBe("");
  return JSON.parse(r.stdout);
};
const write = (name: string, text: string) => {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
};

describe("stack commands", () => {
  it("create, lock, snapshot, compare, restore, delete, with an audit trail", async () => {
    expect((await sloth("stack", "list")).stdout).toBe("no stacks yet\n");
    expect(await sloth("stack", "create", "network", "-d", "VPC")).toMatchObject({
      code: 0,
      stdout: "stack 'network' created\n",
    });
    await sloth("stack", "create", "backend", "--depends-on", "network");
    const list = await json("stack", "list");
    expect(list.map((s: { name: string; status: string }) => [s.name, s.status])).toEqual([
      ["backend", "created"],
      ["network", "created"],
    ]);

    const acquired = await json(
      "stack",
      "lock",
      "acquire",
      "backend",
      "--reason",
      "v2",
      "--locked-by",
      "deploy-bot",
      "--ttl",
      "10m",
    );
    expect(acquired).toMatchObject({ lockedBy: "deploy-bot", reason: "v2", pid: 0 });
    // A second holder is refused, naming the first.
    const again = await sloth("stack", "lock", "acquire", "backend", "--locked-by", "alice");
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(
      /^error: stack 'backend' is locked by deploy-bot since \S+ \(manual: v2\); its holder passes the lock id \(--lock-id ID\); others wait for it to be released, or `sloth-runner stack lock force-release backend` if its holder is gone\n$/,
    );
    expect(await json("stack", "lock", "status", "backend")).toMatchObject({ locked: true });
    const wrong = await sloth("stack", "lock", "release", "backend", "--locked-by", "alice");
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/is locked by deploy-bot, not by alice/);
    expect(
      (await sloth("stack", "lock", "release", "backend", "--locked-by", "deploy-bot")).stdout,
    ).toBe("stack 'backend' unlocked\n");

    await sloth(
      "stack",
      "resource",
      "set",
      "backend",
      "web",
      "--type",
      "service",
      "--desired",
      '{"port":80}',
    );
    expect((await sloth("stack", "snapshot", "create", "backend", "-d", "first")).stdout).toBe(
      "snapshot v1 of stack 'backend' created\n",
    );
    await sloth(
      "stack",
      "resource",
      "set",
      "backend",
      "web",
      "--type",
      "service",
      "--desired",
      '{"port":8080}',
    );
    const cmp = await sloth("stack", "snapshot", "compare", "backend", "v1");
    expect(cmp.stdout).toBe("~ $.resources.web.desired.port: 80 -> 8080\n1 difference(s)\n");
    await sloth("stack", "snapshot", "restore", "backend", "v1");
    expect((await json("stack", "resource", "list", "backend"))[0].desired).toEqual({ port: 80 });

    expect((await sloth("stack", "deps", "order", "backend", "network")).stdout).toBe(
      "1. network\n2. backend\n",
    );
    const cycle = await sloth("stack", "deps", "set", "network", "backend");
    expect(cycle).toMatchObject({
      code: 1,
      stderr:
        "error: these dependencies would make a cycle: network -> backend -> network; remove one of the dependencies in the cycle\n",
    });
    const inUse = await sloth("stack", "delete", "network");
    expect(inUse.stderr).toBe(
      "error: stack 'network' is a dependency of 'backend'; remove it from their dependencies first, or delete with --force\n",
    );
    expect((await sloth("stack", "delete", "backend")).code).toBe(0);
    const events = await json("stack", "events", "backend");
    expect(events.map((e: { type: string }) => e.type)).toEqual([
      "stack.destroyed",
      "snapshot.restored",
      "stack.updated",
      "snapshot.created",
      "stack.updated",
      "lock.released",
      "lock.acquired",
      "stack.created",
    ]);
  });

  it("draws the dependency graph as DOT, Mermaid or (with Graphviz) an image", async () => {
    await sloth("stack", "create", "network");
    await sloth("stack", "create", "database", "--depends-on", "network");
    const typo = await sloth("stack", "create", "backend", "--depends-on", "database", "cahce");
    expect(typo).toMatchObject({
      code: 0,
      stderr: "warning: stack 'cahce' does not exist (yet); 'backend' depends on it\n",
    });
    await sloth("stack", "create", "unrelated");
    const dot = await sloth("stack", "deps", "graph", "database");
    expect(dot.stdout).toBe(
      [
        "digraph stacks {",
        "  rankdir=BT;",
        "  node [shape=box, style=rounded];",
        '  "backend" [label="backend\\ncreated"];',
        '  "database" [label="database\\ncreated"];',
        '  "network" [label="network\\ncreated"];',
        '  "database" -> "backend";',
        '  "network" -> "database";',
        "}",
        "",
      ].join("\n"),
    );
    const mmd = path.join(dir, "deps.mmd");
    await sloth("stack", "deps", "graph", "--output", mmd);
    const text = fs.readFileSync(mmd, "utf8");
    expect(text).toContain('s1["cahce (missing)"]');
    expect(text).toContain('s4["unrelated (created)"]');
    expect(text).toContain("s1 --> s0");
    const png = path.join(dir, "deps.png");
    const r = await sloth("stack", "deps", "graph", "--output", png);
    const hasDot = (process.env.PATH ?? "")
      .split(":")
      .some((d) => fs.existsSync(path.join(d, "dot")));
    if (hasDot) expect(fs.statSync(png).size).toBeGreaterThan(0);
    else
      expect(r).toMatchObject({
        code: 1,
        stderr:
          "error: drawing a png needs Graphviz's `dot`, which is not installed; install graphviz (apt-get install graphviz), or write DOT or Mermaid text: --output deps.dot or --output deps.mmd\n",
      });
  });

  it("detects drift with the resources' checks and fixes it only when approved", async () => {
    const motd = path.join(dir, "motd");
    fs.writeFileSync(motd, "hello\n");
    await sloth("stack", "create", "web");
    await sloth(
      "stack",
      "resource",
      "set",
      "web",
      "motd",
      "--type",
      "file",
      "--desired",
      "hello",
      "--check",
      `cat ${motd}`,
      "--fix",
      `echo hello > ${motd}`,
    );
    expect(await sloth("stack", "drift", "detect", "web")).toMatchObject({
      code: 0,
      stdout: "motd (file): in_sync\nstack 'web': no drift\n",
    });
    fs.writeFileSync(motd, "bye\n");
    const drift = await sloth("stack", "drift", "detect", "web");
    expect(drift).toMatchObject({
      code: 1,
      stdout: `motd (file): drifted\n  ~ $: "hello" -> "bye"\nstack 'web': 1 of 1 resource(s) not in sync\n`,
    });
    const plan = await sloth("stack", "drift", "fix", "web");
    expect(plan.code).toBe(1);
    expect(plan.stdout).toContain(`would run for motd: echo hello > ${motd}`);
    expect(fs.readFileSync(motd, "utf8")).toBe("bye\n");
    const fixed = await sloth("stack", "drift", "fix", "web", "--auto-approve");
    expect(fixed.code).toBe(0);
    expect(fixed.stdout).toContain("fixed: motd");
    expect(fs.readFileSync(motd, "utf8")).toBe("hello\n");
    expect((await json("stack", "drift", "show", "web")).inSync).toBe(true);
  });

  it("names bad input and the fix, and never overwrites a stacks.db it cannot read", async () => {
    const cases: [string[], number, string | RegExp][] = [
      [
        ["stack", "create", "../x"],
        1,
        `error: invalid stack name "../x"; use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit\n`,
      ],
      [
        ["stack", "show", "ghost"],
        1,
        "error: stack 'ghost' not found; create it with `sloth-runner stack create ghost`, or run a workflow as it with `sloth-runner run ghost -f FILE`\n",
      ],
      [["stack", "lock", "acquire", "ghost"], 1, /^error: stack 'ghost' not found/],
      [
        ["stack", "lock", "acquire", "ghost", "--ttl", "soon"],
        2,
        `error: invalid --ttl 'soon'; use a duration from 1s to 10 years, such as "30s", "10m" or "2h"; leave it out for a lock held until released\n`,
      ],
    ];
    for (const [args, code, stderr] of cases) {
      const r = await sloth(...args);
      expect({ args, code: r.code }).toEqual({ args, code });
      if (typeof stderr === "string") expect(r.stderr).toBe(stderr);
      else expect(r.stderr).toMatch(stderr);
    }
    await sloth("stack", "create", "a");
    const v = await sloth("stack", "snapshot", "restore", "a", "v3");
    expect(v.stderr).toBe(
      "error: stack 'a' has no snapshot v3; list them with `sloth-runner stack snapshot list a`\n",
    );
    const db = path.join(dataDir, "stacks.db");
    for (const f of fs.readdirSync(dataDir))
      if (f.startsWith("stacks.db")) fs.rmSync(path.join(dataDir, f));
    fs.writeFileSync(db, "this is not a database ".repeat(100));
    const bad = await sloth("stack", "list");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: .*stacks\.db.*\n$/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
    expect(fs.readFileSync(db, "utf8").startsWith("this is not a database")).toBe(true);
  });
});

describe("stack commands: locks held by the caller, and bad values", () => {
  it("makes changes under the caller's lock with --lock-id, refuses them without", async () => {
    const motd = path.join(dir, "motd");
    fs.writeFileSync(motd, "old\n");
    await sloth("stack", "create", "m");
    const l = await json("stack", "lock", "acquire", "m", "--reason", "maintenance");
    const set = [
      "stack",
      "resource",
      "set",
      "m",
      "motd",
      "--type",
      "file",
      "--desired",
      "new",
      "--check",
      `cat ${motd}`,
      "--fix",
      `echo new > ${motd}`,
    ];
    const refused = await sloth(...set);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /^error: stack 'm' is locked by \S+ since \S+ \(manual: maintenance\);/,
    );
    expect((await sloth(...set, "--lock-id", l.lockId)).code).toBe(0);
    // The fix runs under the caller's lock, which stays held.
    const fixed = await sloth(
      "stack",
      "drift",
      "fix",
      "m",
      "--auto-approve",
      "--lock-id",
      l.lockId,
    );
    expect(fixed.code).toBe(0);
    expect(fs.readFileSync(motd, "utf8")).toBe("new\n");
    expect((await json("stack", "lock", "status", "m")).lock.lockId).toBe(l.lockId);
    // A snapshot, and a deployment, by the holder.
    expect((await sloth("stack", "snapshot", "create", "m", "--lock-id", l.lockId)).code).toBe(0);
    const f = write(
      "m.sloth",
      `workflow.define("w"):tasks({ task("a"):command(function()
  stack.resource({ name = "from-run", type = "x" })
  return true, "ok", { v = 1 }
end) })
`,
    );
    expect((await sloth("run", "m", "-f", f)).code).toBe(1);
    expect((await sloth("run", "m", "-f", f, "--lock-id", l.lockId)).code).toBe(0);
    const after = await json("stack", "show", "m");
    expect(after).toMatchObject({ status: "completed", state: { outputs: { a: { v: 1 } } } });
    // The holder's lock stays held after the run.
    expect(after.lock.lockId).toBe(l.lockId);
    const typo = write(
      "typo.sloth",
      `workflow.define("w"):tasks({ task("a"):command(function()
  stack.resource({ name = "r", type = "x", chekc = "true" })
  return true
end) })
`,
    );
    const t = await sloth("run", "m", "-f", typo, "--lock-id", l.lockId);
    expect(t.stdout).toContain(
      `typo.sloth:2: stack.resource: unknown field "chekc"; the fields are name, type, desired, check, fix, depends_on`,
    );
    const wrong = await sloth("stack", "drift", "fix", "m", "--auto-approve", "--lock-id", "nope");
    expect(wrong.stderr).toBe(
      "error: the lock of stack 'm' is not nope; see `sloth-runner stack lock status m`\n",
    );
  });

  it("names values out of range", async () => {
    await sloth("stack", "create", "v");
    const cases: [string[], string][] = [
      [
        ["stack", "events", "v", "--limit", "abc"],
        "error: invalid --limit 'abc': expected an integer >= 1\n",
      ],
      [
        ["stack", "resource", "set", "v", "r", "--type", "t", "--desired", '{"a":1'],
        `error: invalid --desired: Expected ',' or '}' after property value in JSON at position 6; give valid JSON, or plain text written as a JSON string (--desired '"text"')\n`,
      ],
      [
        ["stack", "lock", "acquire", "v", "--ttl", "999999999999d"],
        `error: invalid --ttl '999999999999d'; use a duration from 1s to 10 years, such as "30s", "10m" or "2h"; leave it out for a lock held until released\n`,
      ],
      [
        ["stack", "drift", "detect", "v", "--timeout", "30d"],
        `error: invalid --timeout '30d'; use a duration from 1ms to 24 days, such as "30s" or "5m"\n`,
      ],
    ];
    for (const [args, stderr] of cases) {
      const r = await sloth(...args);
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 2, stderr });
    }
  });

  it("shows control characters of other users' text as '?'", async () => {
    await sloth("stack", "create", "t", "-d", "evil\u001b[2Jdesc");
    const out = (await sloth("stack", "list")).stdout;
    expect(out).toContain("evil?[2Jdesc");
    expect(out).not.toContain("\u001b");
  });
});

describe("run STACK -f FILE", () => {
  const deploy = () =>
    write(
      "deploy.sloth",
      `local deploy = task("deploy"):command(function()
  if values.fail then return false, "deploy broke" end
  if values.wait then exec.run("sleep " .. values.wait) end
  return true, "deployed", { version = values.version or "1" }
end)
workflow.define("release"):tasks({ deploy }):config({
  create_snapshot = true, detect_drift = true, on_failure = "rollback",
})
`,
    );

  it("records each run's outputs as the stack's state, snapshots first and rolls back a failure", async () => {
    const f = deploy();
    const v2 = write("v2.yaml", 'version: "2"\n');
    const fail = write("fail.yaml", "fail: true\n");
    const ok = await sloth("run", "prod", "-f", f, "--values", v2);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toBe(
      "stack 'prod': snapshot v1 taken before the run\nstack 'prod': no drift after the run\n",
    );
    const shown = await json("stack", "show", "prod");
    expect(shown).toMatchObject({
      status: "completed",
      executionCount: 1,
      state: { outputs: { deploy: { version: "2" } }, workflows: ["release"] },
      lock: null,
    });
    const bad = await sloth("run", "prod", "-f", f, "--values", fail);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(
      `stack 'prod': rolled back to snapshot v2 (on_failure = "rollback")`,
    );
    const after = await json("stack", "show", "prod");
    expect(after).toMatchObject({ status: "failed", executionCount: 2, lock: null });
    // The state is the one before the failed run.
    expect(after.state.outputs).toEqual({ deploy: { version: "2" } });
  });

  it("fails after a successful run when the stack drifted (detect_drift)", async () => {
    const f = deploy();
    const marker = path.join(dir, "marker");
    await sloth("stack", "create", "prod");
    await sloth(
      "stack",
      "resource",
      "set",
      "prod",
      "marker",
      "--type",
      "file",
      "--desired",
      "on",
      "--check",
      `cat ${marker}`,
    );
    const r = await sloth("run", "prod", "-f", f);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "error: stack 'prod' drifted after the run (detect_drift): marker (missing); see `sloth-runner stack drift show prod`\n",
    );
    expect((await json("stack", "show", "prod")).status).toBe("completed");
  });

  it("runs one deployment of a stack at a time; a killed run's lock is broken by the next", async () => {
    const f = deploy();
    const slow = write("slow.yaml", "wait: 30\n");
    const first = spawnNode(
      CLI_BIN,
      ["--data-dir", dataDir, "run", "prod", "-f", f, "--values", slow],
      {
        env: { CI: "" },
      },
    );
    await waitFor(async () => (await json("stack", "lock", "status", "prod")).locked, {
      what: "the first run's lock",
    });
    const second = await sloth("run", "prod", "-f", f);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(
      new RegExp(
        `^error: stack 'prod' is locked by \\S+ \\(pid ${first.child.pid}\\) since \\S+ \\(run: ${f.replace(/[.]/g, "\\.")}\\)`,
      ),
    );
    // SIGKILL: the run never releases its lock, the next run breaks it.
    first.kill("SIGKILL");
    await first.exited;
    const third = await sloth("run", "prod", "-f", f);
    expect(third.code).toBe(0);
    const events = await json("stack", "events", "prod");
    expect(events.map((e: { type: string }) => e.type)).toContain("lock.force_released");
    // The killed run is recorded as failed.
    expect(
      events.find((e: { type: string }) => e.type === "stack.execution.failed").message,
    ).toMatch(/ended without recording how: its lock is stale \(holder gone, /);
    expect(events.find((e: { type: string }) => e.type === "lock.force_released").message).toMatch(
      /\(holder gone\)$/,
    );
  });

  it("gives tasks the Lua stack module: the last state, resources they declare, events", async () => {
    const target = path.join(dir, "motd");
    const f = write(
      "mod.sloth",
      `local deploy = task("deploy"):command(function()
  local prev = stack.state()
  local n = (prev.outputs and prev.outputs.deploy.n or 0) + 1
  fs.write(${JSON.stringify(target)}, "v" .. n)
  stack.resource({ name = "motd", type = "file", desired = "v" .. n,
    check = "cat ${target}", fix = "printf v" .. n .. " > ${target}" })
  stack.event("deployed v" .. n)
  print(stack.name .. " has " .. #stack.resources() .. " resource(s)")
  return true, "ok", { n = n }
end)
workflow.define("m"):tasks({ deploy }):config({ detect_drift = true })
`,
    );
    expect((await sloth("run", "web", "-f", f)).code).toBe(0);
    const second = await sloth("run", "web", "-f", f);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain("web has 1 resource(s)");
    expect(fs.readFileSync(target, "utf8")).toBe("v2");
    expect((await json("stack", "resource", "list", "web"))[0]).toMatchObject({
      name: "motd",
      desired: "v2",
      drift: { status: "in_sync" },
    });
    const events = await json("stack", "events", "web");
    expect(
      events
        .filter((e: { type: string }) => e.type === "workflow.event")
        .map((e: { message: string }) => e.message),
    ).toEqual(["deployed v2", "deployed v1"]);
    // Without a stack, the module says how to run one.
    const p = write(
      "plain.sloth",
      'workflow.define("p"):tasks({ task("a"):command(function() return true, stack.name or "none", stack.state() end) })\n',
    );
    const r = await sloth("run", p);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      "plain.sloth:1: this run deploys no stack: run it as `sloth-runner run STACK -f FILE` to use the stack module",
    );
  });

  it("says in -o json output that the stack drifted after the run", async () => {
    const f = deploy();
    await sloth("stack", "create", "prod");
    await sloth("stack", "resource", "set", "prod", "gone", "--type", "file", "--check", "false");
    const r = await sloth("run", "prod", "-f", f, "-o", "json");
    expect(r.code).toBe(1);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.at(-2)).toMatchObject({ type: "summary", status: "succeeded" });
    expect(lines.at(-1)).toEqual({
      type: "stack",
      stack: "prod",
      status: "failed",
      message: "stack 'prod' drifted after the run (detect_drift): gone (missing)",
    });
  });

  it("stops a rollback's fixes on Ctrl-C, records it and releases the lock", async () => {
    const f = deploy();
    const fail = write("fail.yaml", "fail: true\n");
    const mark = path.join(dir, "fix-finished");
    const begun = path.join(dir, "fix-started");
    await sloth("stack", "create", "prod");
    await sloth(
      "stack",
      "resource",
      "set",
      "prod",
      "slow",
      "--type",
      "t",
      "--desired",
      "1",
      "--check",
      "echo 2",
      "--fix",
      `touch ${begun}; sleep 20; touch ${mark}`,
    );
    const p = spawnNode(
      CLI_BIN,
      ["--data-dir", dataDir, "run", "prod", "-f", f, "--values", fail],
      {
        env: { CI: "" },
      },
    );
    await p.waitForOutput("rolled back to snapshot v1", 20_000);
    // Interrupt the fix itself, not the check before it.
    await waitFor(() => fs.existsSync(begun), { timeoutMs: 20_000, what: "the fix to start" });
    const t = Date.now();
    p.kill("SIGINT");
    expect(await p.exited).toBe(130);
    expect(Date.now() - t).toBeLessThan(5000);
    expect(p.stderr()).toContain("stack 'prod': not fixed: slow: fix interrupted");
    const s = await json("stack", "show", "prod");
    expect(s).toMatchObject({ status: "failed", lock: null });
    const types = (await json("stack", "events", "prod")).map((e: { type: string }) => e.type);
    expect(types).toContain("stack.execution.interrupted");
    await new Promise((r) => setTimeout(r, 500));
    expect(fs.existsSync(mark)).toBe(false);
  });

  it("resumes a stack's run as that stack, and keeps the outputs of tasks a run did not run", async () => {
    const flag = path.join(dir, "b-ok");
    const f = write(
      "res.sloth",
      `local a = task("a"):command(function() return true, "a", { v = "a1" } end)
local b = task("b"):depends_on({ a }):command(function()
  if not fs.exists(${JSON.stringify(flag)}) then return false, "not yet" end
  stack.resource({ name = "r", type = "t", desired = 1 })
  return true, "b", { v = "b1" }
end)
workflow.define("w"):tasks({ a, b })
`,
    );
    const first = await sloth("run", "s2", "-f", f);
    expect(first.code).toBe(1);
    const id = /run id: (\S+)/.exec(first.stdout)?.[1] as string;
    fs.writeFileSync(flag, "");
    const resumed = await sloth("run", "--resume", id);
    expect(resumed.code).toBe(0);
    const s = await json("stack", "show", "s2");
    expect(s).toMatchObject({ status: "completed", executionCount: 2, lock: null });
    expect(s.state.outputs).toEqual({ a: { v: "a1" }, b: { v: "b1" } });
    expect(s.resources.map((r: { name: string }) => r.name)).toEqual(["r"]);
    // A subset keeps what the other tasks left.
    expect((await sloth("run", "s2", "-f", f, "-t", "a")).code).toBe(0);
    expect((await json("stack", "show", "s2")).state.outputs).toEqual({
      a: { v: "a1" },
      b: { v: "b1" },
    });
  });

  it("fails the run, recorded, when its outputs cannot be the stack's state", async () => {
    const f = write(
      "deep.sloth",
      `local function deep(n) local t = {} local c = t for i = 1, n do c.n = {} c = c.n end return t end
workflow.define("w"):tasks({ task("a"):command(function() return true, "ok", deep(300) end) })
`,
    );
    const r = await sloth("run", "deep", "-f", f, "-o", "json");
    expect(r.code).toBe(1);
    const last = JSON.parse(r.stdout.trim().split("\n").at(-1) as string);
    expect(last).toMatchObject({ type: "stack", stack: "deep", status: "failed" });
    expect(last.message).toMatch(
      /^the run's task outputs cannot be stack 'deep''s state: state nests deeper than 256 levels$/,
    );
    expect(await json("stack", "show", "deep")).toMatchObject({
      status: "failed",
      executionCount: 1,
      lock: null,
    });
  });

  it("refuses changes from the file's top level, and says what a dry run would do", async () => {
    const f = write(
      "top.sloth",
      `stack.resource({ name = "top", type = "x" })
workflow.define("w"):tasks({ task("a"):command(function() return true end) })
`,
    );
    const r = await sloth("run", "top", "-f", f);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "stack.resource changes stack 'top': call it from a task, not from the file's top level",
    );
    const dry = await sloth("run", "prod", "-f", deploy(), "--dry-run");
    expect(dry.code).toBe(0);
    expect(dry.stderr).toBe(
      "dry run: stack 'prod' does not exist yet (a run creates it); a run would lock it, snapshot it, then check drift after success and roll back on failure\n",
    );
    expect((await sloth("run", "", "-f", deploy())).code).toBe(2);
  });

  it("lets several runs of different stacks write to one stacks.db at once", async () => {
    const f = write(
      "par.sloth",
      `local ts = {}
for i = 1, 8 do
  ts[i] = task("t" .. i):command(function()
    for j = 1, 5 do stack.resource({ name = "r" .. i .. "-" .. j, type = "x", desired = j }) end
    return true
  end)
end
workflow.define("w"):tasks(ts):config({ max_parallel_tasks = 8 })
`,
    );
    const runs = await Promise.all(["c1", "c2", "c3"].map((n) => sloth("run", n, "-f", f)));
    expect(runs.map((r) => r.code)).toEqual([0, 0, 0]);
    for (const n of ["c1", "c2", "c3"])
      expect((await json("stack", "resource", "list", n)).length).toBe(40);
  });

  it("refuses stack keys without a stack", async () => {
    const r = await sloth("run", deploy());
    expect(r).toMatchObject({
      code: 1,
      stderr:
        "error: cannot run workflow 'release': create_snapshot, detect_drift, on_failure = \"rollback\" need a stack; run it as a stack's deployment (`sloth-runner run STACK -f FILE`), or remove these keys from the workflow's config\n",
    });
  });
});
