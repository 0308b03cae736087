import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import {
  cleanup,
  runCli,
  spawnAgent,
  spawnMaster,
  type TestProcess,
  tempDir,
  waitFor,
} from "@sloth/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// One master and three agents (two labelled web, one db) for the file.
let master: TestProcess;
let tokenFile: string;
const agents: Record<string, TestProcess> = {};

beforeAll(async () => {
  master = await spawnMaster();
  tokenFile = path.join(master.dataDir, "master", "token");
  for (const [name, role] of [
    ["web-1", "web"],
    ["web-2", "web"],
    ["db-1", "db"],
  ] as const) {
    agents[name] = await spawnAgent({
      name,
      master: master.address,
      tokenFile,
      args: ["--label", `role=${role}`],
    });
  }
}, 90_000);

afterAll(cleanup);

function flow(text: string): string {
  const dir = tempDir();
  const file = path.join(dir, "flow.sloth");
  fs.writeFileSync(file, text);
  return file;
}

/**
 * A workflow whose task on web-1 prints data.txt, which holds `content`
 * (mtime a minute ago), run once; and the one scan of its folder kept.
 */
async function showData(content: string) {
  const file = flow(`
local show = task("show"):delegate_to("web-1"):command("cat data.txt")
workflow.define("show"):tasks({ show })
`);
  const dir = path.dirname(file);
  const data = path.join(dir, "data.txt");
  const old = new Date(Date.now() - 60_000);
  fs.writeFileSync(data, content);
  fs.utimesSync(data, old, old);
  const first = await run(file);
  expect(first.code, first.stderr + first.stdout).toBe(0);
  expect(first.stdout).toContain(`show | ${content.trim()}`);
  const scans = path.join(master.dataDir, "workspace-scans");
  const kept = fs
    .readdirSync(scans)
    .map((n) => path.join(scans, n))
    .filter((p) => fs.readFileSync(p, "utf8").includes(`"dir":${JSON.stringify(dir)}`));
  expect(kept).toHaveLength(1);
  return { file, data, old, kept: kept[0] as string };
}

/** Runs with history on; gives the result and where each task ran, as `runs show --json` says. */
async function runRecorded(file: string) {
  const r = await runWith(file);
  const id = /^run id: (\S+)$/m.exec(r.stdout)?.[1];
  expect(id, r.stdout + r.stderr).toBeDefined();
  const shown = await runCli(["--data-dir", master.dataDir, "runs", "show", id!, "--json"]);
  const tasks = (JSON.parse(shown.stdout) as { tasks: Array<{ name: string; agents?: string[] }> })
    .tasks;
  return { ...r, on: Object.fromEntries(tasks.map((t) => [t.name, t.agents])) };
}

/** `sloth-runner run FILE` against this file's master. */
const runWith = (file: string, ...args: string[]) =>
  runCli(["--data-dir", master.dataDir, "run", file, "--master", master.address, ...args], {
    timeoutMs: 90_000,
  });

const run = (file: string, ...args: string[]) => runWith(file, "--no-history", ...args);

describe("delegate_to", () => {
  it("runs seed 004's group-level and task-level examples on local agents", async () => {
    const group = flow(`
Modern DSLs = {
  my_distributed_group = {
    description = "A task group with distributed tasks.",
    delegate_to = { address = "${agents["web-1"]!.address}" },
    tasks = {
      {
        name = "remote_hello",
        description = "Runs a hello world task on a remote agent.",
        command = function(params)
          log.info("Hello from remote agent!")
          return true, "Remote task executed."
        end
      }
    }
  }
}
`);
    const r1 = await run(group);
    expect(r1.code, r1.stderr + r1.stdout).toBe(0);
    expect(r1.stderr).toContain("'Modern DSLs' is not valid Lua; read as TaskDefinitions");
    expect(r1.stdout).toContain("remote_hello | INFO Hello from remote agent!");
    expect(r1.stdout).toMatch(/remote_hello: succeeded in .*\(Remote task executed\.\)/);

    const task = flow(`
Modern DSLs = {
  my_group = {
    description = "A task group with a specific remote task.",
    tasks = {
      {
        name = "specific_remote_task",
        description = "Runs this task on a specific remote agent.",
        delegate_to = { address = "${agents["web-2"]!.address}" },
        command = function(params)
          log.info("Hello from a specific remote agent!")
          return true, "Specific remote task executed."
        end
      },
      {
        name = "local_task",
        description = "This task runs locally.",
        command = "echo 'Hello from local machine!'"
      }
    }
  }
}
`);
    const r2 = await run(task);
    expect(r2.code, r2.stderr + r2.stdout).toBe(0);
    expect(r2.stdout).toContain("specific_remote_task | INFO Hello from a specific remote agent!");
    expect(r2.stdout).toContain("local_task | Hello from local machine!");
  });

  it("passes outputs both ways in a diamond with one remote branch", async () => {
    const file = flow(`
local top = task("top"):command(function() return true, "ok", { base = 20 } end)
local left = task("left"):depends_on({ top }):delegate_to("db-1")
  :command(function(params, deps) return true, "remote", { value = deps.top.base * 2, task = params.task_name } end)
local right = task("right"):depends_on({ top }):command("echo right")
local bottom = task("bottom"):depends_on({ left, right })
  :command(function(params, deps)
    log.info("sum " .. (deps.left.value + 2) .. " from " .. deps.left.task .. " and " .. deps.right.stdout)
    return true
  end)
workflow.define("diamond"):tasks({ top, left, right, bottom })
`);
    const r = await run(file);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain("bottom | INFO sum 42 from left and right");
  });

  it("runs on every agent of a list, and on one or all agents with labels", async () => {
    const file = flow(`
local each = task("each"):delegate_to({ "web-1", "db-1" })
  :command(function() return true, "hi", { n = 1 } end)
local one = task("one_web"):delegate_to({ labels = { role = "web" } })
  :command(function() log.info("on a web agent"); return true end)
local all = task("all_web"):delegate_to({ labels = { role = "web" }, all = true })
  :command("echo every-web")
local check = task("check"):depends_on({ each })
  :command(function(params, deps)
    log.info("agents " .. deps.each["web-1"].n + deps.each["db-1"].n)
    return true
  end)
workflow.define("targets"):tasks({ each, one, all, check })
`);
    const r = await run(file);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain("check | INFO agents 2");
    expect(r.stdout.match(/all_web \| \[web-[12]\] every-web/g)?.length).toBe(2);
    expect(r.stdout).toContain("one_web | INFO on a web agent");
  });

  it("retries a task on several agents only where it failed, and falls back only when none is there", async () => {
    const marks = tempDir();
    const file = flow(`
local fan = task("fan"):delegate_to({ "web-1", "web-2" }):retries(1):command([[
  case "$PWD" in */web-1/*) n=web1;; *) n=web2;; esac
  echo ran >> "${marks}/$n"
  if [ "$n" = web2 ] && [ "$(wc -l < "${marks}/$n")" -lt 2 ]; then echo first-try-fails; exit 1; fi
  echo ok-$n
]])
local partial = task("partial"):delegate_to({ "web-1", "nosuch", fallback = "local" }):command("echo partial-ran")
workflow.define("w"):tasks({ fan, partial })
`);
    const r = await runRecorded(file);
    expect(r.code).toBe(1);
    // The retry ran on web-2 alone; the result names both agents.
    expect(r.on.fan).toEqual(["web-1", "web-2"]);
    expect(fs.readFileSync(path.join(marks, "web1"), "utf8")).toBe("ran\n");
    expect(fs.readFileSync(path.join(marks, "web2"), "utf8")).toBe("ran\nran\n");
    expect(r.stdout).toContain("fan | INFO already done on agent 'web-1': not run again");
    expect(r.stdout).toMatch(/fan: succeeded/);
    // One of the list is missing: not run here instead of on the others.
    expect(r.stdout).toMatch(/partial: failed .*agent 'nosuch' is not registered/);
    expect(r.stdout).not.toContain("partial-ran");
  });

  it("names the workflow file as the runner knows it when its top level fails on the agent", async () => {
    // conf.json is beside the workflow here, not in what the agent loads.
    const file = flow(`
local conf = fs.read("conf.json")
local t = task("t"):delegate_to("web-1"):command("echo never")
workflow.define("w"):tasks({ t })
`);
    fs.writeFileSync(path.join(path.dirname(file), "conf.json"), "{}");
    const r = await run(file);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/t: failed .*agent 'web-1' cannot load the workflow: flow\.sloth:2:/);
    expect(r.stdout).toMatch(/read data files inside a task, whose workspace is shipped/);
    expect(r.stdout).not.toMatch(/bundle-/);
  });

  it("falls back to local when no target is available, and fails naming the target otherwise", async () => {
    const file = flow(`
local fb = task("fb"):delegate_to({ labels = { role = "gpu" }, fallback = "local" }):command("echo ran-locally")
local strict = task("strict"):delegate_to("nobody"):command("echo never")
local nowhere = task("nowhere"):delegate_to({ address = "127.0.0.1:1" }):command("echo never")
local dialled = task("dialled"):delegate_to({ address = "127.0.0.1:1", fallback = "local" }):command("echo dialled-locally")
workflow.define("fallback"):tasks({ fb, strict, nowhere, dialled })
`);
    const r = await run(file);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("fb | ran-locally");
    // An address that does not answer falls back too.
    expect(r.stdout).toMatch(
      /dialled \| no target available \(cannot reach agent at 127\.0\.0\.1:1[^)]*\): running locally/,
    );
    expect(r.stdout).toContain("dialled | dialled-locally");
    expect(r.stdout).toMatch(/strict: failed .*agent 'nobody' is not registered/);
    // Never reached is not "lost".
    expect(r.stdout).toMatch(
      /nowhere: failed .*cannot reach agent at 127\.0\.0\.1:1: connection refused/,
    );
    expect(r.stdout).not.toMatch(/nowhere: failed .*agent lost/);
  });

  it("falls back to local when the master does not answer, but not when it refuses the token", async () => {
    const file = flow(`
local x = task("x"):delegate_to({ agent = "web-1", fallback = "local" }):command("echo ran-here")
workflow.define("w"):tasks({ x })
`);
    const base = ["--data-dir", master.dataDir, "run", file, "--no-history"];
    const down = await runCli([...base, "--master", "127.0.0.1:1"], { timeoutMs: 60_000 });
    expect(down.code, down.stderr + down.stdout).toBe(0);
    expect(down.stdout).toMatch(
      /x \| no target available \(cannot reach master at 127\.0\.0\.1:1[^)]*\): running locally/,
    );
    expect(down.stdout).toContain("x | ran-here");
    const bad = path.join(tempDir(), "token");
    fs.writeFileSync(bad, "not-the-cluster-token-at-all-0123456789abcdef\n", { mode: 0o600 });
    const refused = await runCli([...base, "--master", master.address, "--token-file", bad], {
      timeoutMs: 60_000,
    });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/x: failed .*refused the request/);
    expect(refused.stdout).not.toContain("ran-here");
  });

  it("local and delegated tasks share the master's state even without --master", async () => {
    const file = flow(`
print("top level of shared")
local init = task("init"):command(function() state.set("cnt", 0) return true end)
local fan = task("fan"):depends_on({ init }):delegate_to({ "web-1", "web-2" }):command(function()
  for i = 1, 5 do state.increment("cnt") end
  return true
end)
local check = task("check"):depends_on({ fan }):command(function() return true, "cnt=" .. tostring(state.get("cnt")) end)
workflow.define("shared"):tasks({ init, fan, check })
`);
    // The master comes from the environment, as for a user with a default master.
    const r = await runCli(["--data-dir", master.dataDir, "run", file, "--no-history"], {
      env: { ...process.env, SLOTH_RUNNER_MASTER_ADDR: master.address },
      timeoutMs: 90_000,
    });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/check: succeeded in \S+ \(cnt=10\)/);
    // Loaded again to use the master's store, its top level's output shows once.
    expect(r.stderr.match(/top level of shared/g)).toHaveLength(1);
    // An agent dialled by address keeps state in the same store (its master is this one).
    const byAddress = flow(`
local init = task("init"):command(function() state.set("k", "from-local") return true end)
local remote = task("remote"):depends_on({ init }):delegate_to({ address = "${agents["web-1"]!.address}" }):command(function()
  state.set("r", "saw " .. tostring(state.get("k")))
  return true
end)
local check = task("check"):depends_on({ remote }):command(function() return true, tostring(state.get("r")) end)
workflow.define("addr"):tasks({ init, remote, check })
`);
    const a = await runCli(["--data-dir", master.dataDir, "run", byAddress, "--no-history"], {
      env: { ...process.env, SLOTH_RUNNER_MASTER_ADDR: master.address },
      timeoutMs: 90_000,
    });
    expect(a.code, a.stderr + a.stdout).toBe(0);
    expect(a.stdout).toMatch(/check: succeeded in \S+ \(saw from-local\)/);
    // With no master configured at all, the local tasks keep their state here.
    const alone = tempDir();
    const env = { ...process.env };
    delete env.SLOTH_RUNNER_MASTER_ADDR;
    const b = await runCli(
      ["--data-dir", alone, "run", byAddress, "--no-history", "--token-file", tokenFile],
      { env, timeoutMs: 90_000 },
    );
    expect(b.code, b.stderr + b.stdout).toBe(0);
    expect(fs.existsSync(path.join(alone, "state.db"))).toBe(true);
  });

  it("runs every task on --delegate-to agents", async () => {
    const file = flow(`
local a = task("a"):command("echo on-agent")
workflow.define("flag"):tasks({ a })
`);
    const r = await run(file, "--delegate-to", "db-1");
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain("a | on-agent");
    // The log says where the task ran.
    expect(r.stdout).toContain("a | INFO running on agent 'db-1'");
    // HOST:PORT (agent names never hold ':') dials that agent, as delegate_to("HOST:PORT") does.
    const direct = await run(file, "--delegate-to", agents["db-1"]!.address);
    expect(direct.code, direct.stderr + direct.stdout).toBe(0);
    expect(direct.stdout).toContain("a | on-agent");
    expect(direct.stdout).toContain(`a | INFO running on agent at ${agents["db-1"]!.address}`);
    // JSON events and the run's history say where it ran.
    const recorded = await runWith(file, "--delegate-to", "db-1", "-o", "json");
    expect(recorded.code, recorded.stderr + recorded.stdout).toBe(0);
    const events = recorded.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; runId: string; agents?: string[] });
    const done = events.find((e) => e.type === "task.succeeded");
    expect(done?.agents).toEqual(["db-1"]);
    const id = done!.runId;
    const shown = await runCli(["--data-dir", master.dataDir, "runs", "show", id, "--json"]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(
      (JSON.parse(shown.stdout) as { tasks: Array<{ agents?: string[] }> }).tasks[0]?.agents,
    ).toEqual(["db-1"]);
    const table = await runCli(["--data-dir", master.dataDir, "runs", "show", id]);
    expect(table.stdout).toMatch(/^TASK\s+STATUS\s+ATTEMPTS\s+DURATION\s+ON\s+MESSAGE$/m);
    expect(table.stdout).toMatch(/^a\s+succeeded\s+1\s+\S+\s+db-1\b/m);
    const inline = flow(`
local b = task("b"):delegate_to("${agents["web-1"]!.address}"):command("echo by-address")
workflow.define("inline"):tasks({ b })
`);
    const byAddress = await run(inline);
    expect(byAddress.code, byAddress.stderr + byAddress.stdout).toBe(0);
    expect(byAddress.stdout).toContain("b | by-address");
    // Bad values are refused before anything runs (b has a target of its own).
    const both = flow(`
local a = task("a"):command("echo on-agent")
local b = task("b"):delegate_to("web-1"):command("echo b-ran")
workflow.define("both"):tasks({ a, b })
`);
    for (const [value, message] of [
      ["", /--delegate-to '' is not an agent name/],
      ["web 1", /--delegate-to 'web 1' is not an agent name/],
      [
        "127.0.0.1:abc",
        /--delegate-to: invalid address '127\.0\.0\.1:abc': port 'abc' is not a number/,
      ],
    ] as const) {
      const bad = await run(both, "--delegate-to", value);
      expect(bad.code, bad.stdout).toBe(2);
      expect(bad.stderr).toMatch(message);
      expect(bad.stdout).not.toContain("b-ran");
    }
    // Commas separate agents, as repeating the flag does.
    const two = await run(file, "--delegate-to", "web-1,web-2");
    expect(two.code, two.stderr + two.stdout).toBe(0);
    expect(two.stdout).toContain("a | [web-1] on-agent");
    expect(two.stdout).toContain("a | [web-2] on-agent");
  });

  it("ships the workspace to the agent and brings created, modified and deleted files back", async () => {
    const file = flow(`
local edit = task("edit"):delegate_to("web-1"):workspace({ exclude = { "*.log" } }):command([[
  set -e
  test -f input.txt && test ! -e .git/config && test ! -e skip.log && test ! -e secret.txt
  cat input.txt
  echo created > created.txt
  echo more >> modified.txt
  rm deleted.txt
  mkdir -p sub && echo deep > sub/new.txt
  ln -s /etc/hostname outside-link
]])
workflow.define("ws"):tasks({ edit })
`);
    const dir = path.dirname(file);
    fs.writeFileSync(path.join(dir, "input.txt"), "hello workspace\n");
    fs.writeFileSync(path.join(dir, "modified.txt"), "first\n");
    fs.writeFileSync(path.join(dir, "deleted.txt"), "bye\n");
    fs.writeFileSync(path.join(dir, "skip.log"), "not shipped\n");
    fs.writeFileSync(path.join(dir, "secret.txt"), "not shipped either\n");
    fs.writeFileSync(path.join(dir, ".slothignore"), "secret.txt\n");
    fs.mkdirSync(path.join(dir, ".git"));
    fs.writeFileSync(path.join(dir, ".git", "config"), "[core]\n");
    const r = await run(file);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain("edit | hello workspace");
    expect(fs.readFileSync(path.join(dir, "created.txt"), "utf8")).toBe("created\n");
    expect(fs.readFileSync(path.join(dir, "modified.txt"), "utf8")).toBe("first\nmore\n");
    expect(fs.existsSync(path.join(dir, "deleted.txt"))).toBe(false);
    expect(fs.readFileSync(path.join(dir, "sub", "new.txt"), "utf8")).toBe("deep\n");
    // A link leaving the workspace does not travel back, and the log says so.
    expect(r.stdout).toMatch(
      /not brought back \(symlinks leaving the workspace[^)]*\): outside-link/,
    );
    expect(fs.existsSync(path.join(dir, "outside-link"))).toBe(false);
    expect(fs.readFileSync(path.join(dir, ".git", "config"), "utf8")).toBe("[core]\n");
    expect(fs.readFileSync(path.join(dir, "skip.log"), "utf8")).toBe("not shipped\n");
    expect(fs.readFileSync(path.join(dir, "secret.txt"), "utf8")).toBe("not shipped either\n");
  });

  it("keeps each workspace's scan between runs, and still ships a file rewritten with its old size and mtime", async () => {
    const { file, data, old, kept } = await showData("version-1\n");
    expect(fs.statSync(kept).mode & 0o777).toBe(0o600);
    // Same size, same mtime: only the ctime tells the next run it changed.
    fs.writeFileSync(data, "version-2\n");
    fs.utimesSync(data, old, old);
    const second = await run(file);
    expect(second.code, second.stderr + second.stdout).toBe(0);
    expect(second.stdout).toContain("show | version-2");
    // Unchanged: the manifest is named to the agent, not sent; the task still sees version 2.
    const third = await run(file);
    expect(third.code, third.stderr + third.stdout).toBe(0);
    expect(third.stdout).toContain("show | version-2");
    // And changed again, it is sent whole.
    fs.writeFileSync(data, "version-three\n");
    const fourth = await run(file);
    expect(fourth.code, fourth.stderr + fourth.stdout).toBe(0);
    expect(fourth.stdout).toContain("show | version-three");
  });

  it("reads a file again when its kept scan proves wrong (a clock set back), instead of failing the task", async () => {
    const { file, kept } = await showData("the real content\n");
    // The kept scan now gives data.txt a hash that is not its content's, as
    // when a change lands with a ctime older than the scan (the clock went back).
    const text = fs.readFileSync(kept, "utf8");
    const real = createHash("sha256").update("the real content\n").digest("hex");
    expect(text).toContain(real);
    const wrong = createHash("sha256").update("something else").digest("hex");
    fs.writeFileSync(kept, text.replaceAll(real, wrong));
    const second = await run(file);
    expect(second.code, second.stderr + second.stdout).toBe(0);
    expect(second.stdout).toContain("show | the real content");
    // And the scan kept for the next run is right again.
    expect(fs.readFileSync(kept, "utf8")).not.toContain(wrong);
  });

  it("two parallel tasks changing the same file: the first to finish wins, the other fails naming it", async () => {
    const file = flow(`
local fast = task("fast"):delegate_to("web-1"):command("echo fast > shared.txt; echo fast > fast.txt")
local slow = task("slow"):delegate_to("web-2"):command("sleep 1; echo slow > shared.txt; echo slow > slow.txt")
workflow.define("race"):tasks({ fast, slow })
`);
    const dir = path.dirname(file);
    fs.writeFileSync(path.join(dir, "shared.txt"), "base\n");
    const r = await run(file);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/fast: succeeded/);
    expect(r.stdout).toMatch(/slow: failed .*changed here while the task ran: "shared\.txt"/);
    expect(fs.readFileSync(path.join(dir, "shared.txt"), "utf8")).toBe("fast\n");
    // The rest of the slow task's changes did come back.
    expect(fs.readFileSync(path.join(dir, "slow.txt"), "utf8")).toBe("slow\n");
    expect(fs.readFileSync(path.join(dir, "fast.txt"), "utf8")).toBe("fast\n");
  });

  it("refuses a workspace over --workspace-limit, naming the limit", async () => {
    const file = flow(`
local t = task("big"):delegate_to("web-1"):command("true")
workflow.define("big"):tasks({ t })
`);
    fs.writeFileSync(path.join(path.dirname(file), "blob.bin"), Buffer.alloc(64 * 1024));
    const r = await run(file, "--workspace-limit", "16k");
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/big: failed .*(too large|limit|larger)/i);
  });

  it("kills the remote process at the task's timeout", async () => {
    const marker = `31.${Date.now() % 1e6}`;
    const file = flow(`
local slow = task("slow"):delegate_to("web-2"):timeout("3s"):command("sleep ${marker}")
workflow.define("slow"):tasks({ slow })
`);
    const r = await run(file);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/slow: (timed out|failed)/);
    await waitFor(() => spawnSync("pgrep", ["-f", `^sleep ${marker}$`]).status !== 0, {
      timeoutMs: 10_000,
      what: "the remote sleep to be killed",
    });
  });

  it("a task that times out on the agent still brings back what it changed, as a local one leaves it", async () => {
    const file = flow(`
local slow = task("slow"):delegate_to("web-1"):timeout("6s"):command("echo partial > made.txt; rm gone.txt; sleep 30; echo late > late.txt")
workflow.define("slow"):tasks({ slow })
`);
    const dir = path.dirname(file);
    fs.writeFileSync(path.join(dir, "gone.txt"), "x\n");
    const started = Date.now();
    const r = await run(file);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/slow: timed out/);
    expect(Date.now() - started).toBeLessThan(25_000);
    expect(fs.readFileSync(path.join(dir, "made.txt"), "utf8")).toBe("partial\n");
    expect(fs.existsSync(path.join(dir, "gone.txt"))).toBe(false);
    expect(fs.existsSync(path.join(dir, "late.txt"))).toBe(false);
  });
});

describe("an agent lost mid-task", () => {
  it("a retry on a labelled target goes to another agent, not back to the lost one", async () => {
    const a = await spawnAgent({
      name: "lost-a",
      master: master.address,
      tokenFile,
      args: ["--label", "pool=retry"],
    });
    await spawnAgent({
      name: "lost-b",
      master: master.address,
      tokenFile,
      args: ["--label", "pool=retry"],
    });
    const marker = `3.${Date.now() % 1e6}`;
    const file = flow(`
local t = task("t"):delegate_to({ labels = { pool = "retry" } }):retries(1, "fixed"):retry_delay("200ms")
  :command("sleep ${marker}; echo done on $(hostname)")
workflow.define("retry"):tasks({ t })
`);
    const pending = runRecorded(file);
    const running = () => spawnSync("pgrep", ["-f", `^sleep ${marker}$`]).status === 0;
    await waitFor(running, { what: "the first attempt to start" });
    // Both idle: the first by name runs it.
    a.proc.kill("SIGKILL", true);
    spawnSync("pkill", ["-f", `^sleep ${marker}$`]);
    const r = await pending;
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/t: retrying .*agent lost: .*'lost-a'/);
    expect(r.stdout).toMatch(/t: succeeded/);
    expect(r.on.t).toEqual(["lost-b"]);
  }, 60_000);

  it("fails the task with 'agent lost'", async () => {
    const victim = await spawnAgent({ name: "doomed", master: master.address, tokenFile });
    const marker = `32.${Date.now() % 1e6}`;
    const lua = `33.${Date.now() % 1e6}`;
    const file = flow(`
local t = task("remote"):delegate_to("doomed"):command("sleep ${marker}")
local l = task("remote-lua"):delegate_to("doomed"):command(function() exec.run("sleep ${lua}") return true end)
workflow.define("lost"):tasks({ t, l })
`);
    const pending = run(file);
    const running = (m: string) => spawnSync("pgrep", ["-f", `^sleep ${m}$`]).status === 0;
    await waitFor(() => running(marker) && running(lua), { what: "the tasks to start" });
    victim.proc.kill("SIGKILL", true);
    const r = await pending;
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/remote: failed .*agent lost/);
    // Still running, unsupervised, until the agent starts again and kills them.
    expect(running(marker) && running(lua)).toBe(true);
    try {
      await spawnAgent({
        name: "doomed",
        master: master.address,
        tokenFile,
        dataDir: victim.dataDir,
      });
      await waitFor(() => !running(marker) && !running(lua), {
        timeoutMs: 10_000,
        what: "the orphaned task processes to be killed",
      });
    } finally {
      spawnSync("pkill", ["-f", `^sleep (${marker}|${lua})$`]);
    }
  });
});
