import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { startTestAgent, tempDir, waitFor } from "../test/helpers.js";
import { type CommandEvent, runCommand } from "./run-command.js";
import { spawnerPid, warmSpawner } from "./spawner.js";

const pkgDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function collect(
  command: string,
  options: Parameters<typeof runCommand>[1] = {},
): Promise<{ stdout: string; stderr: string; exit: CommandEvent & { type: "exit" } }> {
  let stdout = "";
  let stderr = "";
  let exit: (CommandEvent & { type: "exit" }) | undefined;
  for await (const e of runCommand({ command }, options)) {
    if (e.type === "output") {
      if (e.stream === "stdout") stdout += Buffer.from(e.data).toString();
      else stderr += Buffer.from(e.data).toString();
    }
    if (e.type === "exit") exit = e;
  }
  if (!exit) throw new Error("no exit event");
  return { stdout, stderr, exit };
}

function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

describe("the spawner helper", () => {
  it("forks commands from a small helper process, in their own process group", async () => {
    warmSpawner();
    const r = await collect("echo $PPID $$ $(ps -o pgid= -p $$)");
    const [ppid, pid, pgid] = r.stdout.trim().split(/\s+/).map(Number);
    expect(r.exit.exitCode).toBe(0);
    const helper = spawnerPid();
    expect(helper).toBeDefined();
    expect(ppid).toBe(helper);
    expect(ppid).not.toBe(process.pid);
    expect(parentOf(helper as number)).toBe(process.pid);
    expect(pgid).toBe(pid);
    // The helper's memory stays small: that is its point.
    const status = fs.readFileSync(`/proc/${helper}/status`, "utf8");
    const anonKiB = Number(/RssAnon:\s+(\d+)/.exec(status)?.[1]);
    expect(anonKiB).toBeGreaterThan(0);
    expect(anonKiB).toBeLessThan(48 * 1024);
  });

  it("spawns from the agent itself when asked to", async () => {
    const r = await collect("echo $PPID", { spawner: false });
    expect(Number(r.stdout.trim())).toBe(process.pid);
  });

  it("holds no secret of the agent in its environment", async () => {
    warmSpawner();
    await collect("true");
    const env = fs.readFileSync(`/proc/${spawnerPid()}/environ`, "utf8").split("\0");
    expect(env.filter((v) => v.startsWith("SLOTH_"))).toEqual([]);
  });

  it("reports exit codes, signals, output and start errors as a direct spawn does", async () => {
    const ok = await collect("printf out; printf err >&2; exit 7");
    expect(ok).toMatchObject({ stdout: "out", stderr: "err", exit: { exitCode: 7, signal: "" } });
    const killed = await collect("kill -TERM $$");
    expect(killed.exit).toMatchObject({ exitCode: -1, signal: "SIGTERM", signalNumber: 15 });
    const events: CommandEvent[] = [];
    for await (const e of runCommand({ command: "x", argv: ["/nonexistent/program"] }))
      events.push(e);
    expect(events).toEqual([
      expect.objectContaining({
        type: "exit",
        exitCode: -1,
        startError: expect.stringMatching(/ENOENT/),
      }),
    ]);
  });

  it("loses no exit among many short commands at once", async () => {
    const runs = await Promise.all(
      Array.from({ length: 200 }, (_, i) => collect(`echo ${i}; exit ${i % 5}`)),
    );
    runs.forEach((r, i) => {
      expect(r.stdout).toBe(`${i}\n`);
      expect(r.exit.exitCode).toBe(i % 5);
    });
  });

  it("keeps output flowing when the helper dies mid-command, says the exit status is lost, and starts again", async () => {
    warmSpawner();
    await collect("true");
    const helper = spawnerPid() as number;
    const dir = tempDir("sloth-spawner-lost-");
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const marker = path.join(dir, "ran-to-the-end");
    // Quiet for longer than the drain after an exit: the command must live on.
    const run = runCommand({ command: `echo before; sleep 2.5; echo after; touch ${marker}` });
    const seen: CommandEvent[] = [];
    for await (const e of run) {
      seen.push(e);
      if (e.type === "output" && Buffer.from(e.data).toString().includes("before"))
        process.kill(helper, "SIGKILL");
    }
    const text = (stream: string) =>
      seen
        .flatMap((e) =>
          e.type === "output" && e.stream === stream ? [Buffer.from(e.data).toString()] : [],
        )
        .join("");
    expect(text("stdout")).toBe("before\nafter\n");
    expect(fs.existsSync(marker)).toBe(true);
    expect(text("stderr")).toMatch(/exit status of this command was lost/);
    expect(seen.at(-1)).toMatchObject({ type: "exit", exitCode: -1 });
    const again = await collect("echo $PPID");
    expect(Number(again.stdout.trim())).toBe(spawnerPid());
    expect(spawnerPid()).not.toBe(helper);
  });

  it("lets a library user's script end on its own, and ends with it", async () => {
    const dir = tempDir("sloth-spawner-");
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(pkgDir, "test", `.spawner-exit-${process.pid}.ts`);
    fs.writeFileSync(
      file,
      [
        'import { runCommand } from "@sloth/agent";',
        'for await (const e of runCommand({ command: "echo $PPID" }))',
        '  if (e.type === "output") process.stdout.write(e.data);',
      ].join("\n"),
    );
    cleanups.push(() => fs.rmSync(file, { force: true }));
    const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", file], {
      cwd: pkgDir,
      stdio: ["ignore", "pipe", "inherit"],
    });
    cleanups.push(() => child.kill("SIGKILL"));
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    expect(code).toBe(0);
    const helper = Number(out.trim());
    expect(helper).toBeGreaterThan(0);
    expect(helper).not.toBe(child.pid);
    // The helper leaves with its agent: gone, a zombie, or no longer the spawner.
    const helperGone = () => {
      try {
        if (fs.readFileSync(`/proc/${helper}/stat`, "utf8").split(") ")[1]?.startsWith("Z"))
          return true;
        return !fs.readFileSync(`/proc/${helper}/cmdline`, "utf8").includes("spawner");
      } catch {
        return true;
      }
    };
    await waitFor(helperGone, 10_000);
    expect(helperGone()).toBe(true);
  });
});

describe("start failures", () => {
  it("says a command longer than the system allows is too long, and how to send it", async () => {
    const huge = `echo ok # ${"x".repeat(140_000)}`;
    for (const spawner of [true, false]) {
      const events: CommandEvent[] = [];
      for await (const e of runCommand({ command: huge }, { spawner })) events.push(e);
      expect(events).toEqual([
        expect.objectContaining({
          type: "exit",
          exitCode: -1,
          startError: expect.stringMatching(
            /^cannot run command: the command \(140010 bytes\) or its environment \(0 bytes added\) is longer than the system allows .*standard input$/,
          ),
        }),
      ]);
    }
  });
});

describe("with an agent", () => {
  it("starts with the agent and is gone, reaped, once the agent has stopped", async () => {
    const t = await startTestAgent();
    let stopped = false;
    cleanups.push(() => {
      if (!stopped) void t.close();
    });
    const helper = spawnerPid();
    expect(helper).toBeDefined();
    await t.close();
    stopped = true;
    expect(fs.existsSync(`/proc/${helper}`)).toBe(false);
    expect(spawnerPid()).toBeUndefined();
  });
});
