import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  isSchedulerError,
  type Launcher,
  nextRunOf,
  openScheduleStore,
  runScheduleNow,
  runScheduler,
  type SchedulerEvent,
  type ScheduleStore,
} from "./index.js";

const dirs: string[] = [];
const stores: ScheduleStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function fresh(): { dir: string; db: string; store: ScheduleStore } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-scheduler-"));
  dirs.push(dir);
  const db = path.join(dir, "schedules.db");
  const store = openScheduleStore({ path: db });
  stores.push(store);
  return { dir, db, store };
}

const DIST = new URL("../dist/index.js", import.meta.url).href;
const require = createRequire(import.meta.url);

/** Runs `code` in another node process with the built package as `S`; its stdout. */
function inChild(code: string): string {
  const r = spawnSync(
    process.execPath,
    ["--input-type=module", "-e", `import * as S from ${JSON.stringify(DIST)};\n${code}`],
    {
      encoding: "utf8",
    },
  );
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  return r.stdout;
}

/** A launcher that runs `bash -c script` (the schedule's file is passed as $1), killed on abort. */
function bashLauncher(script: string): Launcher {
  return (s, _run, signal, started) =>
    new Promise((resolve, reject) => {
      const child = spawn("bash", ["-c", script, "bash", s.spec.file], { stdio: "ignore" });
      if (child.pid !== undefined) started?.(child.pid);
      const kill = () => child.kill("SIGTERM");
      signal.addEventListener("abort", kill, { once: true });
      child.once("error", reject);
      child.once("exit", (code, sig) => {
        signal.removeEventListener("abort", kill);
        resolve(
          sig
            ? { exitCode: null, message: `killed by ${sig}` }
            : { exitCode: code, runId: code === 0 ? `run-${process.hrtime.bigint()}` : undefined },
        );
      });
    });
}

describe("schedule store", () => {
  it("adds, lists, updates and deletes schedules, with their next slot", () => {
    const { dir, store } = fresh();
    const file = path.join(dir, "flow.sloth");
    const s = store.add({
      name: "nightly",
      cron: "0 3 * * *",
      timezone: "Europe/Berlin",
      spec: { file, values: [path.join(dir, "v.yaml")], params: { a: "1" }, tasks: ["t"] },
      description: "backup",
    });
    expect(s).toMatchObject({ name: "nightly", enabled: true, timezone: "Europe/Berlin" });
    expect(s.spec).toEqual({
      file,
      values: [path.join(dir, "v.yaml")],
      params: { a: "1" },
      tasks: ["t"],
    });
    expect(s.nextRunAt?.getTime()).toBe(nextRunOf("0 3 * * *", "Europe/Berlin")?.getTime());
    expect(s.nextRunAt!.getTime()).toBeGreaterThan(Date.now());
    store.add({ name: "a-first", cron: "@hourly", spec: { file } });
    expect(store.list().map((x) => x.name)).toEqual(["a-first", "nightly"]);

    const off = store.update("nightly", { enabled: false, cron: "*/5 * * * *", timezone: null });
    expect(off).toMatchObject({ enabled: false, cron: "*/5 * * * *", timezone: undefined });
    expect(off.nextRunAt).toBeUndefined();
    store.delete("nightly");
    expect(store.find("nightly")).toBeUndefined();
    expect(() => store.get("nightly")).toThrow(/schedule 'nightly' not found/);
  });

  it("refuses bad names, expressions, time zones, paths and duplicates, naming the fix", () => {
    const { dir, store } = fresh();
    const file = path.join(dir, "f.sloth");
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        expect(isSchedulerError(e)).toBe(true);
        return `${(e as Error & { code: string }).code}: ${(e as Error).message}`;
      }
      return "no error";
    };
    expect(code(() => store.add({ name: "../x", cron: "* * * * *", spec: { file } }))).toMatch(
      /^SLOTH_INVALID_ARGUMENT: invalid schedule name "..\/x"/,
    );
    expect(code(() => store.add({ name: "x", cron: "61 * * * *", spec: { file } }))).toMatch(
      /^SLOTH_INVALID_ARGUMENT: invalid cron expression "61 \* \* \* \*": Invalid value for minute: 61/,
    );
    expect(code(() => store.add({ name: "x", cron: "", spec: { file } }))).toMatch(
      /invalid cron expression: it is empty/,
    );
    expect(
      code(() =>
        store.add({ name: "x", cron: "* * * * *", timezone: "Mars/Base", spec: { file } }),
      ),
    ).toBe('SLOTH_INVALID_ARGUMENT: invalid time zone "Mars/Base"');
    expect(
      code(() => store.add({ name: "x", cron: "* * * * *", spec: { file: "rel.sloth" } })),
    ).toMatch(/the workflow file "rel.sloth" is not an absolute path/);
    store.add({ name: "x", cron: "* * * * *", spec: { file } });
    expect(code(() => store.add({ name: "x", cron: "* * * * *", spec: { file } }))).toBe(
      "SLOTH_SCHEDULE_EXISTS: schedule 'x' already exists",
    );
    expect(code(() => store.update("x", { cron: "nope" }))).toMatch(
      /invalid cron expression "nope"/,
    );
    expect(store.get("x").cron).toBe("* * * * *");
  });

  it("lets one scheduler hold a file at a time; a holder that died is replaced", () => {
    const { db, store } = fresh();
    // Another live process holds it.
    const holder = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import * as S from ${JSON.stringify(DIST)};
const s = S.openScheduleStore({ path: ${JSON.stringify(db)} });
s.claimScheduler();
console.log("held");
setInterval(() => {}, 1000);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    return new Promise<void>((resolve, reject) => {
      holder.stdout.once("data", () => {
        try {
          let err: unknown;
          try {
            store.claimScheduler();
          } catch (e) {
            err = e;
          }
          expect(isSchedulerError(err, "SLOTH_SCHEDULER_RUNNING")).toBe(true);
          expect((err as Error).message).toMatch(
            new RegExp(`^cannot start the scheduler: another one runs \\(pid ${holder.pid} on `),
          );
          expect(store.scheduler()?.pid).toBe(holder.pid);
          holder.kill("SIGKILL");
          holder.once("exit", () => {
            try {
              expect(store.scheduler()).toBeUndefined();
              const release = store.claimScheduler();
              expect(store.scheduler()?.pid).toBe(process.pid);
              release();
              expect(store.scheduler()).toBeUndefined();
              resolve();
            } catch (e) {
              reject(e);
            }
          });
        } catch (e) {
          holder.kill("SIGKILL");
          reject(e);
        }
      });
    });
  });

  it("marks runs whose process died as lost", () => {
    const { dir, db, store } = fresh();
    store.add({ name: "x", cron: "* * * * *", spec: { file: path.join(dir, "f") } });
    inChild(`const s = S.openScheduleStore({ path: ${JSON.stringify(db)} });
s.startRun("x", "schedule", new Date()); s.close();`);
    const mine = store.startRun("x", "manual");
    expect(store.settleLost()).toBe(1);
    const runs = store.runs("x");
    expect(runs.map((r) => r.status)).toEqual(["running", "lost"]);
    expect(runs[1]!.message).toBe("the process that started it stopped before it ended");
    expect(store.finishRun(mine.id, { status: "succeeded", exitCode: 0 }).status).toBe("succeeded");
  });
});

describe("the scheduler loop", () => {
  it("runs a schedule at each slot, records each run, and stops on abort", async () => {
    const { dir, store } = fresh();
    const out = path.join(dir, "out.txt");
    const file = path.join(dir, "flow.sloth");
    store.add({ name: "tick", cron: "* * * * * *", spec: { file } });
    const events: SchedulerEvent[] = [];
    const stop = new AbortController();
    let ended = 0;
    let twoEnded: () => void = () => undefined;
    const two = new Promise<void>((r) => {
      twoEnded = r;
    });
    const loop = runScheduler({
      store,
      launch: bashLauncher(`echo "$1" >> ${JSON.stringify(out)}`),
      signal: stop.signal,
      pollMs: 50,
      onEvent: (e) => {
        events.push(e);
        if (e.type === "run-ended" && ++ended === 2) twoEnded();
      },
    });
    const t0 = Date.now();
    await two;
    stop.abort();
    await loop;
    // Two slots of a schedule that fires every second: about two seconds.
    expect(Date.now() - t0).toBeLessThan(10_000);
    const lines = fs.readFileSync(out, "utf8").trim().split("\n");
    expect(new Set(lines)).toEqual(new Set([file]));
    const runs = store.runs("tick").reverse();
    const done = runs.filter((r) => r.status === "succeeded");
    expect(done.length).toBeGreaterThanOrEqual(2);
    expect(lines.length).toBeGreaterThanOrEqual(done.length);
    for (const r of done) {
      expect(r).toMatchObject({ exitCode: 0, trigger: "schedule" });
      expect(r.runId).toMatch(/^run-/);
      // Started on its slot (whole seconds), not before.
      expect(r.dueAt!.getMilliseconds()).toBe(0);
      expect(r.startedAt.getTime()).toBeGreaterThanOrEqual(r.dueAt!.getTime());
    }
    // One slot per second: consecutive runs are whole seconds apart (one,
    // unless a slow start made the next slot find the first still going).
    const gap = done[1]!.dueAt!.getTime() - done[0]!.dueAt!.getTime();
    expect(gap % 1000).toBe(0);
    expect(gap).toBeGreaterThanOrEqual(1000);
    // A run the stop caught is recorded as stopped, never left running.
    for (const r of runs.slice(done.length)) expect(r.status).toBe("stopped");
    expect(events[0]).toEqual({ type: "started", schedules: 1 });
    expect(events.at(-1)).toEqual({ type: "stopped" });
    expect(store.scheduler()).toBeUndefined();
  });

  it("skips a slot while the previous run goes, records failures, and stops runs under way", async () => {
    const { dir, store } = fresh();
    const file = path.join(dir, "flow.sloth");
    store.add({ name: "slow", cron: "* * * * * *", spec: { file } });
    store.add({ name: "bad", cron: "* * * * * *", spec: { file }, enabled: false });
    const stop = new AbortController();
    const loop = runScheduler({
      store,
      launch: (s, run, signal, started) =>
        bashLauncher(s.name === "bad" ? "exit 3" : "sleep 30")(s, run, signal, started),
      signal: stop.signal,
      pollMs: 50,
    });
    await new Promise((r) => setTimeout(r, 1200));
    // Enabled from another handle while the loop runs: picked up.
    const other = openScheduleStore({ path: path.join(dir, "schedules.db") });
    stores.push(other);
    other.update("bad", { enabled: true });
    // Until a bad run has failed and a slow slot was skipped (polled: on a
    // loaded machine a fixed wait may stop the bad run before it ends).
    const deadline = Date.now() + 20_000;
    while (
      Date.now() < deadline &&
      !(
        store.runs("bad").some((r) => r.status === "failed") &&
        store.runs("slow").some((r) => r.status === "skipped")
      )
    )
      await new Promise((r) => setTimeout(r, 50));
    stop.abort();
    await loop;
    const slow = store.runs("slow");
    const statuses = slow.map((r) => r.status);
    expect(statuses.filter((s) => s === "skipped").length).toBeGreaterThanOrEqual(1);
    expect(slow.filter((r) => r.status === "skipped")[0]!.message).toBe(
      "its previous run was still going",
    );
    // The one that ran was stopped with the scheduler.
    const ran = slow.filter((r) => r.status !== "skipped");
    expect(ran).toHaveLength(1);
    expect(ran[0]).toMatchObject({ status: "stopped", message: "killed by SIGTERM" });
    expect(ran[0]!.childPid).toBeGreaterThan(0);
    const bad = store.runs("bad");
    expect(bad.length).toBeGreaterThanOrEqual(1);
    // A bad run the stop caught under way is stopped; the others failed.
    expect(bad.find((r) => r.status === "failed")).toMatchObject({
      exitCode: 3,
      message: "exit code 3",
    });
    for (const r of bad) expect(["failed", "stopped"]).toContain(r.status);
  });

  it("runs a schedule by hand, and counts a launcher that throws as a failed run", async () => {
    const { dir, store } = fresh();
    store.add({ name: "x", cron: "0 0 1 1 *", spec: { file: path.join(dir, "f") } });
    const ok = await runScheduleNow(store, "x", bashLauncher("exit 0"));
    expect(ok).toMatchObject({ trigger: "manual", status: "succeeded", dueAt: undefined });
    const broken = await runScheduleNow(store, "x", async () => {
      throw new Error("cannot start sloth-runner: ENOENT");
    });
    expect(broken).toMatchObject({
      status: "failed",
      message: "cannot start sloth-runner: ENOENT",
    });
    await expect(runScheduleNow(store, "nope", bashLauncher("true"))).rejects.toThrow(
      /schedule 'nope' not found/,
    );
  });
});

describe("never two at once, whoever starts them", () => {
  it("refuses a run while another of the schedule goes, even after its scheduler died", async () => {
    const { dir, db, store } = fresh();
    store.add({ name: "x", cron: "0 0 1 1 *", spec: { file: path.join(dir, "f") } });
    // A scheduler that died while its run's process (here: sleep) goes on.
    const sleeper = spawn("sleep", ["30"], { stdio: "ignore" });
    inChild(`const s = S.openScheduleStore({ path: ${JSON.stringify(db)} });
const r = s.startRun("x", "schedule", new Date()); s.setChild(r.id, ${sleeper.pid}); s.close();`);
    try {
      expect(store.settleLost()).toBe(0);
      let err: unknown;
      try {
        store.startRun("x", "manual");
      } catch (e) {
        err = e;
      }
      expect(isSchedulerError(err, "SLOTH_SCHEDULE_BUSY")).toBe(true);
      expect((err as Error).message).toMatch(
        /^schedule 'x' is running already \(run #1, scheduled, since /,
      );
      await expect(runScheduleNow(store, "x", bashLauncher("true"))).rejects.toThrow(
        /running already/,
      );
    } finally {
      sleeper.kill("SIGKILL");
      await new Promise((r) => sleeper.once("exit", r));
    }
    // Its process gone too: lost, and the schedule free again.
    expect(store.settleLost()).toBe(1);
    expect(store.runs("x").at(-1)).toMatchObject({ status: "lost", childPid: sleeper.pid });
    expect((await runScheduleNow(store, "x", bashLauncher("true"))).status).toBe("succeeded");
  });

  it("lets one loop per file run even within one process, and survives a listener that throws", async () => {
    const { dir, db, store } = fresh();
    const out = path.join(dir, "out.txt");
    store.add({ name: "tick", cron: "* * * * * *", spec: { file: path.join(dir, "f") } });
    const stop = new AbortController();
    let ended = 0;
    const loop = runScheduler({
      store,
      launch: bashLauncher(`echo x >> ${JSON.stringify(out)}`),
      signal: stop.signal,
      pollMs: 50,
      onEvent: (e) => {
        if (e.type === "run-ended") ended++;
        throw new Error("a listener's bug");
      },
    });
    const other = openScheduleStore({ path: db });
    stores.push(other);
    await expect(runScheduler({ store: other, launch: bashLauncher("true") })).rejects.toThrow(
      /another one runs/,
    );
    const t0 = Date.now();
    while (ended < 2 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
    stop.abort();
    await loop;
    expect(ended).toBeGreaterThanOrEqual(2);
    // One line per slot: no slot ran twice.
    const lines = fs.readFileSync(out, "utf8").trim().split("\n");
    expect(lines.length).toBe(store.runs("tick").filter((r) => r.status === "succeeded").length);
  });

  it("runs the other schedules when one row cannot be read, and refuses crons that never fire", async () => {
    const { dir, db, store } = fresh();
    const file = path.join(dir, "f");
    store.add({ name: "good", cron: "* * * * * *", spec: { file } });
    store.add({ name: "bad", cron: "* * * * * *", spec: { file } });
    inChild(`import Database from ${JSON.stringify(require.resolve("better-sqlite3"))};
const d = new Database(${JSON.stringify(db)}); d.prepare("UPDATE schedules SET spec = '{not json' WHERE name = 'bad'").run(); d.close();`);
    const listed = store.list();
    expect(listed.find((s) => s.name === "bad")?.error).toMatch(
      /^its stored run options cannot be read \(.*\): update it with -f FILE, or delete it$/,
    );
    const events: SchedulerEvent[] = [];
    const stop = new AbortController();
    const loop = runScheduler({
      store,
      launch: bashLauncher("true"),
      signal: stop.signal,
      pollMs: 50,
      onEvent: (e) => {
        events.push(e);
        if (e.type === "run-ended") stop.abort();
      },
    });
    await loop;
    expect(
      events.filter((e) => e.type === "error").map((e) => (e as { schedule?: string }).schedule),
    ).toEqual(["bad"]);
    expect(store.runs("good")[0]?.status).toBe("succeeded");
    expect(store.runs("bad")).toEqual([]);
    store.delete("bad");
    expect(() => store.add({ name: "never", cron: "0 0 31 2 *", spec: { file } })).toThrow(
      /it never fires/,
    );
  });
});
