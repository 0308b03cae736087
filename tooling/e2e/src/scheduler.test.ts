import fs from "node:fs";
import path from "node:path";
import { CLI_BIN, cleanup, runCli, spawnNode, tempDir, waitFor } from "@sloth/testkit";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";

// `sloth-runner scheduler ...` against the built binary: schedules in a
// private data dir, a real scheduler process starting real runs.
let dataDir: string;
let dir: string;
beforeEach(() => {
  dataDir = tempDir("sloth-sched-data-");
  dir = tempDir("sloth-sched-files-");
});
afterEach(cleanup);
afterAll(cleanup);

const sloth = (...args: string[]) =>
  runCli(["--data-dir", dataDir, ...args], { env: { CI: "" }, cwd: dir });
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

/** A workflow whose one task appends `values.word` (or "-") and params.p to out.txt, relative to its folder. */
const FLOW = `workflow.define("tick"):tasks({
  task("write"):command(function(params)
    local f = io.open("out.txt", "a")
    f:write((values.word or "-") .. " " .. (params.p or "-") .. "\\n")
    f:close()
    return true
  end),
})
`;

describe("scheduler", () => {
  it("adds, lists, shows, updates, disables and deletes schedules; refuses bad input with a hint", async () => {
    write("flow.sloth", FLOW);
    write("prod.yaml", "word: prod\n");
    const added = await sloth(
      "scheduler",
      "add",
      "nightly",
      "--cron",
      "30 2 * * *",
      "--timezone",
      "UTC",
      "-f",
      "flow.sloth",
      "-v",
      "prod.yaml",
      "--param",
      "p=1",
      "--description",
      "backup",
    );
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(
      /^schedule 'nightly' added: 30 2 \* \* \* \(UTC\), runs .*\/flow\.sloth\nnext runs: \S+ \S+, \S+ \S+, \S+ \S+\nno scheduler runs yet: start one with `sloth-runner scheduler start`\n$/,
    );
    const listed = await json("scheduler", "list");
    expect(listed.scheduler).toBeNull();
    expect(listed.schedules).toHaveLength(1);
    expect(listed.schedules[0]).toMatchObject({
      name: "nightly",
      cron: "30 2 * * *",
      timezone: "UTC",
      enabled: true,
      description: "backup",
      spec: {
        file: fs.realpathSync(path.join(dir, "flow.sloth")),
        values: [fs.realpathSync(path.join(dir, "prod.yaml"))],
        params: { p: "1" },
      },
      lastRun: null,
    });
    // `show` gives the whole command the runs use.
    const shown = await sloth("scheduler", "show", "nightly");
    expect(shown.stdout).toMatch(
      /runs: +sloth-runner run --file=\S+\/flow\.sloth --values=\S+\/prod\.yaml --param=p=1\n/,
    );
    expect(
      (await json("scheduler", "update", "nightly", "--secrets-env", "production")).spec,
    ).toMatchObject({ secretsEnv: "production", params: { p: "1" } });
    expect((await sloth("scheduler", "show", "nightly")).stdout).toMatch(
      /--param=p=1 --secrets-env=production\n/,
    );
    expect(new Date(listed.schedules[0].nextRunAt).getUTCHours()).toBe(2);
    expect(new Date(listed.schedules[0].nextRunAt).getUTCMinutes()).toBe(30);

    const text = await sloth("scheduler", "list");
    expect(text.stdout).toMatch(
      /^NAME +CRON +ENABLED +NEXT RUN +LAST RUN +FILE\nnightly +30 2 \* \* \* \(UTC\) +yes /,
    );
    expect(text.stdout).toMatch(/scheduler: not running/);

    const updated = await json(
      "scheduler",
      "update",
      "nightly",
      "--cron",
      "0 4 * * 1",
      "--local-time",
    );
    expect(updated).toMatchObject({ cron: "0 4 * * 1", timezone: null });
    expect(updated.spec.values).toHaveLength(1);
    expect(await json("scheduler", "disable", "nightly")).toMatchObject({
      enabled: false,
      nextRunAt: null,
    });

    const cases: [string[], RegExp, number][] = [
      [
        ["add", "x", "--cron", "61 * * * *", "-f", "flow.sloth"],
        /^error: invalid cron expression "61 \* \* \* \*": Invalid value for minute: 61; give 5 fields/,
        1,
      ],
      [
        ["add", "x", "--cron", "* * * * *", "-f", "nope.sloth"],
        /^error: cannot schedule nope\.sloth: no such workflow file; check the path/,
        2,
      ],
      [
        ["add", "x", "--cron", "* * * * *", "-f", "flow.sloth", "--timezone", "Mars/Base"],
        /^error: invalid time zone "Mars\/Base"; give an IANA time zone/,
        1,
      ],
      [
        ["add", "nightly", "--cron", "* * * * *", "-f", "flow.sloth"],
        /^error: schedule 'nightly' already exists; change it with `sloth-runner scheduler update nightly`/,
        1,
      ],
      [
        ["add", "../evil", "--cron", "* * * * *", "-f", "flow.sloth"],
        /^error: invalid schedule name "\.\.\/evil"/,
        1,
      ],
      [["add", "x", "-f", "flow.sloth"], /cron/, 1],
      [
        ["show", "ghost"],
        /^error: schedule 'ghost' not found; list them with `sloth-runner scheduler list`\n$/,
        1,
      ],
      [
        ["add", "x", "--cron", "* * * * *", "-f", "flow.sloth", "--param", "novalue"],
        /^error: invalid --param 'novalue': expected KEY=VALUE/,
        1,
      ],
    ];
    for (const [args, message, code] of cases) {
      const r = await sloth("scheduler", ...args);
      expect(r.stderr, args.join(" ")).toMatch(message);
      expect(r.code, args.join(" ")).toBeGreaterThanOrEqual(code === 2 ? 1 : code);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect((await json("scheduler", "list")).schedules).toHaveLength(1);
    expect((await sloth("scheduler", "delete", "nightly")).stdout).toBe(
      "schedule 'nightly' deleted\n",
    );
    expect((await json("scheduler", "list")).schedules).toEqual([]);
  });

  it("runs schedules on time from `scheduler start`, records each run, skips overlaps, stops on SIGTERM", async () => {
    write("flow.sloth", FLOW);
    write("slow.sloth", `workflow.define("slow"):tasks({ task("s"):command("sleep 30") })\n`);
    write("v.yaml", "word: scheduled\n");
    await sloth(
      "scheduler",
      "add",
      "tick",
      "--cron",
      "* * * * * *",
      "-f",
      "flow.sloth",
      "-v",
      "v.yaml",
      "--param",
      "p=7",
    );
    await sloth("scheduler", "add", "slow", "--cron", "* * * * * *", "-f", "slow.sloth");
    const daemon = spawnNode(CLI_BIN, ["--data-dir", dataDir, "scheduler", "start"], { cwd: dir });
    await daemon.waitForOutput(/scheduler started: 2 enabled schedule\(s\)/);
    // A second scheduler on the same data dir is refused.
    const second = await sloth("scheduler", "start");
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(
      new RegExp(
        `^error: cannot start the scheduler: another one runs \\(pid ${daemon.child.pid} on `,
      ),
    );
    await waitFor(
      async () => {
        const s = await json("scheduler", "show", "tick");
        return s.runs.filter((r: { status: string }) => r.status === "succeeded").length >= 2;
      },
      { timeoutMs: 30_000, what: "two scheduled runs" },
    );
    await waitFor(
      async () =>
        (await json("scheduler", "show", "slow")).runs.some(
          (r: { status: string }) => r.status === "skipped",
        ),
      { timeoutMs: 10_000, what: "a skipped slot" },
    );
    const listed = await json("scheduler", "list");
    expect(listed.scheduler).toMatchObject({ pid: daemon.child.pid });

    daemon.kill("SIGTERM");
    expect(await daemon.exited).toBe(0);
    expect(daemon.stdout()).toMatch(/tick: started \(due /);
    expect(daemon.stdout()).toMatch(/tick: succeeded in \S+ \(run \S+\)/);
    expect(daemon.stdout()).toMatch(
      /slow: skipped the run due \S+ \S+: its previous run was still going/,
    );
    expect(daemon.stdout()).toMatch(
      /stopping: waiting for the runs under way\n(.*\n)*.*slow: stopped in \S+ \(run \S+\): stopped with the scheduler \(exit code 143\)\n(.*\n)*.*scheduler stopped\n$/,
    );

    // Each run was the workflow with its values and params, in the file's folder.
    const lines = fs.readFileSync(path.join(dir, "out.txt"), "utf8").trim().split("\n");
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(new Set(lines)).toEqual(new Set(["scheduled 7"]));
    // And each is in the run history under the id the schedule recorded.
    const tick = await json("scheduler", "show", "tick");
    const ok = tick.runs.filter((r: { status: string }) => r.status === "succeeded");
    const runs = await json("runs", "list");
    const ids = new Set(runs.map((r: { id: string }) => r.id));
    for (const r of ok) expect(ids.has(r.runId)).toBe(true);
    // The slow run the stop caught ended, recorded, never left running.
    const slow = await json("scheduler", "show", "slow");
    expect(slow.runs.map((r: { status: string }) => r.status)).not.toContain("running");
    expect((await json("scheduler", "list")).scheduler).toBeNull();
  }, 90_000);

  it("runs a schedule by hand with `scheduler run`, output and exit code passed through", async () => {
    write("flow.sloth", FLOW);
    write(
      "broken.sloth",
      `workflow.define("b"):tasks({ task("t"):command("echo oops >&2; exit 3") })\n`,
    );
    await sloth("scheduler", "add", "once", "--cron", "0 0 1 1 *", "-f", "flow.sloth");
    await sloth("scheduler", "add", "broken", "--cron", "0 0 1 1 *", "-f", "broken.sloth");
    const ok = await sloth("scheduler", "run", "once");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/workflow 'tick' succeeded/);
    expect(ok.stdout).toMatch(/run id: \S+\n$/);
    const bad = await sloth("scheduler", "run", "broken");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/schedule 'broken': failed: exit code 1/);
    const shown = await json("scheduler", "show", "broken");
    expect(shown.runs[0]).toMatchObject({ trigger: "manual", status: "failed", exitCode: 1 });
    expect(shown.runs[0].runId).toMatch(/\S/);
    // The file is gone: the run fails, saying why.
    fs.rmSync(path.join(dir, "flow.sloth"));
    const gone = await json("scheduler", "run", "once");
    expect(gone).toMatchObject({ status: "failed", exitCode: 2 });
    expect(gone.message).toMatch(/^exit code 2: .*flow\.sloth/);
  });
});

describe("scheduler, when things go wrong", () => {
  it("keeps the options update does not name, refuses names taken for options, and never overlaps a manual run", async () => {
    write("flow.sloth", FLOW);
    write("prod.yaml", "word: prod\n");
    write("slow.sloth", `workflow.define("slow"):tasks({ task("s"):command("sleep 3") })\n`);
    await sloth(
      "scheduler",
      "add",
      "n",
      "--cron",
      "0 3 * * *",
      "-f",
      "flow.sloth",
      "-v",
      "prod.yaml",
      "-t",
      "write",
      "--param",
      "p=1",
    );
    const other = tempDir("sloth-sched-elsewhere-");
    const r = await runCli(
      ["--data-dir", dataDir, "scheduler", "update", "n", "--param", "p=2", "--json"],
      { cwd: other },
    );
    const updated = JSON.parse(r.stdout);
    expect(updated.spec).toEqual({
      file: fs.realpathSync(path.join(dir, "flow.sloth")),
      cwd: fs.realpathSync(dir),
      values: [fs.realpathSync(path.join(dir, "prod.yaml"))],
      tasks: ["write"],
      params: { p: "2" },
    });
    for (const [flag, value] of [
      ["--stack", "--dry-run"],
      ["-t", "--dry-run"],
      ["-w", "--no-history"],
    ] as const) {
      const bad = await sloth(
        "scheduler",
        "add",
        "x",
        "--cron",
        "* * * * *",
        "-f",
        "flow.sloth",
        `${flag}=${value}`,
      );
      expect(bad.code, flag).toBe(2);
      expect(bad.stderr, flag).toMatch(/^error: invalid --(stack|task|workflow) '--/);
    }
    // A manual run while one goes is refused, naming it.
    await sloth("scheduler", "add", "slow", "--cron", "0 0 1 1 *", "-f", "slow.sloth");
    const first = spawnNode(CLI_BIN, ["--data-dir", dataDir, "scheduler", "run", "slow"], {
      cwd: dir,
    });
    await waitFor(
      async () => (await json("scheduler", "show", "slow")).runs[0]?.status === "running",
      {
        what: "the first run",
      },
    );
    const second = await sloth("scheduler", "run", "slow");
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(
      /^error: schedule 'slow' is running already \(run #\d+, started by hand, since \S+\); wait for it to end/,
    );
    expect(await first.exited).toBe(0);
  }, 60_000);

  it("does not start a second copy of a run whose scheduler was killed, until that run ends", async () => {
    write("hang.sloth", `workflow.define("hang"):tasks({ task("h"):command("sleep 60") })\n`);
    await sloth("scheduler", "add", "hang", "--cron", "* * * * * *", "-f", "hang.sloth");
    const first = spawnNode(CLI_BIN, ["--data-dir", dataDir, "scheduler", "start"], { cwd: dir });
    await first.waitForOutput(/hang: started/);
    const running = await waitFor(async () => {
      const r = (await json("scheduler", "show", "hang")).runs.find(
        (x: { status: string; childPid: number | null }) => x.status === "running" && x.childPid,
      );
      return r as { id: number; childPid: number } | undefined;
    });
    first.kill("SIGKILL");
    await first.exited;
    const second = spawnNode(CLI_BIN, ["--data-dir", dataDir, "scheduler", "start"], { cwd: dir });
    try {
      await second.waitForOutput(
        /hang: skipped the run due \S+ \S+: schedule 'hang' is running already \(run #\d+/,
      );
      // The orphaned run ends: the slot after is run again.
      process.kill(running.childPid, "SIGTERM");
      await second.waitForOutput(/hang: started/, 20_000);
      const runs = (await json("scheduler", "show", "hang")).runs;
      expect(runs.find((x: { id: number }) => x.id === running.id).status).toBe("lost");
      expect(runs.filter((x: { status: string }) => x.status === "running").length).toBe(1);
    } finally {
      second.kill("SIGTERM");
      await second.exited;
      try {
        process.kill(running.childPid, "SIGKILL");
      } catch {
        // Ended already.
      }
    }
  }, 90_000);
});
