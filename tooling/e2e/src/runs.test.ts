import { createHash } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { CLI_BIN, cleanup, REPO_ROOT, runCli, spawnNode, tempDir, waitFor } from "@sloth/testkit";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";

const require = createRequire(import.meta.url);

// Run history, `runs` commands and `run --resume`, against the built binary.
// Ids, times and durations vary: they are replaced by <id>, <when>, <t>.
let dataDir: string;
let dir: string;
beforeEach(() => {
  dataDir = tempDir("sloth-runs-data-");
  dir = tempDir("sloth-runs-files-");
});
afterEach(cleanup);
afterAll(cleanup);

const sloth = (...args: string[]) => runCli(["--data-dir", dataDir, ...args], { env: { CI: "" } });
const norm = (s: string) =>
  s
    .replace(/\b\d{8}T\d{6}-[0-9a-f]{6}\b/g, "<id>")
    .replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/g, "<when>")
    .replace(/\b\d+(\.\d+)?(ms|s)\b|\b\d+m\d\ds\b/g, "<t>")
    .replace(/ +\n/g, "\n")
    // Column widths follow the values replaced above.
    .replace(/ {2,}/g, "  ");
const idOf = (stdout: string) => /run id: (\S+)/.exec(stdout)?.[1] ?? "";

type Task = { name: string; status: string; attempts: number; output?: unknown; reused: boolean };
type Run = { id: string; status: string; resumedFrom?: string; message?: string; tasks: Task[] };
const showJson = async (id: string) =>
  JSON.parse((await sloth("runs", "show", id, "--json")).stdout) as Run;

// a → b → c; b fails while the file `fail-b` exists. Every task appends what
// it ran with to ran.log, so tests see exactly which tasks ran, with what.
function chain(): string {
  const f = path.join(dir, "chain.sloth");
  fs.writeFileSync(
    f,
    `local log = "${dir}/ran.log"
local a = task("a"):command(function(params, deps)
  fs.append(log, "a\\n")
  print("a says hi")
  return true, "a done", { n = 1 }
end)
local b = task("b"):depends_on({ a }):command(function(params, deps)
  fs.append(log, "b:" .. deps.a.n .. "\\n")
  if fs.exists("${dir}/fail-b") then return false, "b broke" end
  return true, "b done", { n = deps.a.n + 1 }
end)
local c = task("c"):depends_on({ b }):command(function(params, deps)
  fs.append(log, "c:" .. deps.b.n .. "\\n")
  return true, "c done", { n = deps.b.n + 1 }
end)
workflow.define("chain"):tasks({ a, b, c })
`,
  );
  return f;
}
const ran = () => fs.readFileSync(path.join(dir, "ran.log"), "utf8").trim().split("\n");

describe("history of runs", () => {
  it("records a success: list, show, logs, as text and JSON", async () => {
    const f = chain();
    const r = await sloth("run", f);
    expect(r.code).toBe(0);
    const id = idOf(r.stdout);
    expect(norm(r.stdout).split("\n").slice(-2)).toEqual(["run id: <id>", ""]);
    const [list, show, logs, logsA, json] = await Promise.all([
      sloth("runs", "list"),
      sloth("runs", "show", id.slice(0, 18)),
      sloth("runs", "logs", id),
      sloth("runs", "logs", id, "a"),
      sloth("runs", "list", "--json"),
    ]);
    expect({ code: list.code, stderr: list.stderr, stdout: norm(list.stdout) }).toEqual({
      code: 0,
      stderr: "",
      stdout: "ID  WORKFLOW  STATUS  STARTED  DURATION\n<id>  chain  succeeded  <when>  <t>\n",
    });
    expect(show.code).toBe(0);
    expect(norm(show.stdout)).toBe(
      [
        "run <id>: workflow 'chain' succeeded",
        `file:  ${f} (sha256 ${hash12(f)})`,
        "started:  <when>, took <t>",
        "",
        "TASK  STATUS  ATTEMPTS  DURATION  MESSAGE",
        "a  succeeded  1  <t>  a done",
        "b  succeeded  1  <t>  b done",
        "c  succeeded  1  <t>  c done",
        "",
        "outputs:",
        '  a: {"n":1}',
        '  b: {"n":2}',
        '  c: {"n":3}',
        "",
      ].join("\n"),
    );
    expect(logs.stdout).toBe("== a\na says hi\n");
    expect(logsA).toEqual({ code: 0, stderr: "", stdout: "a says hi\n" });
    const runs = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      id,
      workflow: "chain",
      file: f,
      status: "succeeded",
      values: {},
      params: {},
      pid: expect.any(Number),
    });
    expect(runs[0]).not.toHaveProperty("resumedFrom");
    expect(typeof runs[0]?.startedAt).toBe("string");
  });

  it("records a failure, then --resume runs only what did not succeed, with the stored outputs", async () => {
    const f = chain();
    fs.writeFileSync(path.join(dir, "fail-b"), "");
    const first = await sloth("run", f, "--param", "who=me");
    expect(first.code).toBe(1);
    const id = idOf(first.stdout);
    const failed = await showJson(id);
    expect(failed).toMatchObject({ status: "failed", message: "task 'b' failed" });
    expect(failed.tasks.map((t) => [t.name, t.status, t.attempts])).toEqual([
      ["a", "succeeded", 1],
      ["b", "failed", 1],
      ["c", "skipped", 0],
    ]);
    expect(ran()).toEqual(["a", "b:1"]);

    fs.rmSync(path.join(dir, "fail-b"));
    const second = await sloth("run", "--resume", id);
    expect(second.stderr).toBe("");
    expect(second.code).toBe(0);
    expect(norm(second.stdout)).toContain("a: succeeded in <t> (done in an earlier run)\n");
    expect(ran()).toEqual(["a", "b:1", "b:1", "c:2"]);
    const resumed = await showJson(idOf(second.stdout));
    expect(resumed).toMatchObject({ status: "succeeded", resumedFrom: id, params: { who: "me" } });
    expect(resumed.tasks.map((t) => [t.name, t.status, t.attempts, t.reused, t.output])).toEqual([
      ["a", "succeeded", 0, true, { n: 1 }],
      ["b", "succeeded", 1, false, { n: 2 }],
      ["c", "succeeded", 1, false, { n: 3 }],
    ]);
    const list = await sloth("runs", "list", "--status", "succeeded");
    expect(norm(list.stdout).split("\n")[1]).toBe(
      "<id>  chain  succeeded  <when>  <t>  resumes <id>",
    );
  });

  it("refuses to resume a changed file unless --force; names unknown runs", async () => {
    const f = chain();
    fs.writeFileSync(path.join(dir, "fail-b"), "");
    const id = idOf((await sloth("run", f)).stdout);
    fs.appendFileSync(f, "-- edited\n");
    const [refused, unknown, badAge] = await Promise.all([
      sloth("run", "--resume", id),
      sloth("runs", "show", "nope"),
      sloth("runs", "prune", "--older-than", "soon"),
    ]);
    expect(refused).toEqual({
      code: 1,
      stdout: "",
      stderr: `error: cannot resume run ${id}: '${f}' changed since that run; pass --force to resume it anyway, or run the workflow anew\n`,
    });
    expect(unknown).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "error: run 'nope' not found; run `sloth-runner runs list` to see the recorded runs\n",
    });
    expect(badAge).toEqual({
      code: 2,
      stdout: "",
      stderr: "error: invalid --older-than 'soon'; use a duration such as 30d, 12h or 90m\n",
    });
    const other = path.join(dir, "other.sloth");
    fs.writeFileSync(other, 'workflow.define("o"):tasks({ task("x"):command("true") })\n');
    const [different, picked] = await Promise.all([
      sloth("run", other, "--resume", id),
      sloth("run", "--resume", id, "-g", "nosuch", "--force"),
    ]);
    expect(different.stderr).toBe(
      `error: cannot resume run ${id}: it ran '${f}', and '${other}' is a different file; pass --force to resume it anyway, or run the workflow anew\n`,
    );
    expect(picked).toEqual({
      code: 2,
      stdout: "",
      stderr:
        "error: --resume runs the workflow of that run again: -g cannot pick another; drop -w/-g, or run the other workflow anew\n",
    });
    const forced = await sloth("run", "--resume", id, "--force");
    expect(forced.code).toBe(1); // b still fails
    expect(ran()).toEqual(["a", "b:1", "b:1"]);
  });

  it("refuses to resume when a file the workflow required changed or is gone, unless --force", async () => {
    fs.mkdirSync(path.join(dir, "lib"));
    const lib = path.join(dir, "lib", "steps.lua");
    fs.writeFileSync(lib, 'return { ok = function() return true, "fine" end }\n');
    const f = path.join(dir, "needs-lib.sloth");
    fs.writeFileSync(
      f,
      `local steps = require("lib.steps")
workflow.define("w"):tasks({
  task("a"):command(steps.ok),
  task("b"):depends_on({ "a" }):command("test -e ${path.join(dir, "go")}"),
})
`,
    );
    const id = idOf((await sloth("run", f)).stdout);
    expect((await showJson(id)).status).toBe("failed");
    fs.appendFileSync(lib, "-- edited\n");
    expect(await sloth("run", "--resume", id)).toEqual({
      code: 1,
      stdout: "",
      stderr: `error: cannot resume run ${id}: 'lib/steps.lua' (read by '${f}') changed since that run; pass --force to resume it anyway, or run the workflow anew\n`,
    });
    fs.renameSync(lib, `${lib}.bak`);
    expect((await sloth("run", "--resume", id)).stderr).toBe(
      `error: cannot resume run ${id}: 'lib/steps.lua' (read by '${f}') is gone; pass --force to resume it anyway, or run the workflow anew\n`,
    );
    fs.renameSync(`${lib}.bak`, lib);
    fs.writeFileSync(path.join(dir, "go"), "");
    const forced = await sloth("run", "--resume", id, "--force");
    expect(forced.code).toBe(0);
    expect((await showJson(idOf(forced.stdout))).resumedFrom).toBe(id);
  });

  it("a history that cannot be written (locked past its wait) does not fail the run", async () => {
    const f = path.join(dir, "ok.sloth");
    fs.writeFileSync(f, `workflow.define("ok"):tasks({ task("a"):command("echo fine") })\n`);
    expect((await sloth("run", f)).code).toBe(0);
    // Another process holds the write lock for longer than the 5 s busy wait.
    const db = path.join(dataDir, "history.db");
    const sqlite = require.resolve("better-sqlite3", {
      paths: [path.join(REPO_ROOT, "packages", "client")],
    });
    const holder = spawnNode(
      "-e",
      [
        `const D=require(${JSON.stringify(sqlite)});const d=new D(${JSON.stringify(db)});d.exec("BEGIN IMMEDIATE");d.exec("DELETE FROM history_runs WHERE 0");console.log("locked");setInterval(()=>{},1000);`,
      ],
      {},
    );
    await holder.waitForOutput("locked");
    const r = await sloth("run", f);
    holder.kill("SIGKILL");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("a | fine");
    expect(r.stdout).toMatch(/succeeded in .*: 1 succeeded/);
    expect(r.stderr).toMatch(/^notice: run \S+ not recorded: cannot write .*history\.db: /m);
    expect(r.stderr).not.toMatch(/This is a bug/);
  }, 30_000);

  it("records an aborted run; --no-history records nothing; prune deletes finished runs", async () => {
    const aborted = await sloth("run", "examples/conditions.sloth", "--param", "freeze=yes");
    expect(aborted.code).toBe(1);
    const run = await showJson(idOf(aborted.stdout));
    expect(run.status).toBe("aborted");
    expect(run.message).toBe("task 'freeze_gate' aborted the run: abort_if is true");
    expect(run.tasks.map((t) => t.status)).toContain("cancelled");
    await sloth("run", "examples/hello.sloth", "--no-history");
    expect((await sloth("runs", "list", "--json")).stdout).toContain('"workflow": "conditions"');
    expect(JSON.parse((await sloth("runs", "list", "--json", "-w", "hello")).stdout)).toEqual([]);
    const [keep, all] = [
      await sloth("runs", "prune", "--older-than", "30d"),
      await sloth("runs", "prune", "--older-than", "0s", "--json"),
    ];
    expect(keep.stdout).toBe("pruned 0 runs\n");
    expect(JSON.parse(all.stdout)).toEqual({ pruned: [run.id] });
    expect(await sloth("runs", "list")).toEqual({
      code: 0,
      stderr: "",
      stdout: "no runs recorded\n",
    });
  });

  it("shows a run whose runner was killed with SIGKILL as interrupted; --resume stops what it left running", async () => {
    const pidFile = path.join(dir, "sleep.pid");
    const resumed = path.join(dir, "resumed");
    const f = path.join(dir, "long.sloth");
    fs.writeFileSync(
      f,
      `workflow.define("long"):tasks({ task("quick"):command("true"), task("wait"):depends_on("quick"):command("test -e ${resumed} && exit 0; echo $$ > ${pidFile}; exec sleep 30") })\n`,
    );
    const p = spawnNode(CLI_BIN, ["--data-dir", dataDir, "run", f]);
    await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").trim() !== "", {
      what: "the task's pid file",
    });
    const sleeper = Number(fs.readFileSync(pidFile, "utf8"));
    try {
      // Its start is written within a flush interval of the task starting.
      await waitFor(async () => {
        const [run] = JSON.parse((await sloth("runs", "list", "--json")).stdout) as Run[];
        return run && (await showJson(run.id)).tasks[1]?.status === "running";
      });
      p.kill("SIGKILL");
      await p.exited;
      const list = await sloth("runs", "list", "--json");
      const [run] = JSON.parse(list.stdout) as Run[];
      expect(run).toMatchObject({
        status: "interrupted",
        message: `the runner (pid ${p.child.pid}) stopped before the run ended`,
      });
      const shown = await showJson(run?.id ?? "");
      expect(shown.tasks.map((t) => [t.name, t.status])).toEqual([
        ["quick", "succeeded"],
        ["wait", "interrupted"],
      ]);
      // The task's sleep outlived its runner; resuming stops it first, so it
      // never runs twice.
      expect(running(sleeper)).toBe(true);
      fs.writeFileSync(resumed, "");
      const again = await sloth("run", "--resume", run?.id ?? "");
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).toContain(
        `notice: stopped 1 process(es) of task 'wait' still running since run ${run?.id} was interrupted`,
      );
      expect(running(sleeper)).toBe(false);
    } finally {
      try {
        process.kill(sleeper, "SIGKILL");
      } catch {
        // Stopped by the resume.
      }
    }
  });
});

function hash12(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex").slice(0, 12);
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
}
