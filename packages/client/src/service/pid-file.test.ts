import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { claimPidFile, processAlive, readPidFile, stopPidFile } from "./pid-file.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe("pid files", () => {
  it("kills a process that ignores SIGTERM after the grace period", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-pid-"));
    dirs.push(dir);
    const child = spawn("bash", ["-c", "trap '' TERM; echo ready; sleep 60 & wait"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    await new Promise((r) => child.stdout.once("data", r));
    const file = path.join(dir, "x.pid");
    claimPidFile(file, child.pid!, "test");
    expect(() => claimPidFile(file, process.pid, "test")).toThrow(
      `test is already running (pid ${child.pid})`,
    );
    const t0 = Date.now();
    const r = await stopPidFile(file, 300);
    expect(r).toEqual({ outcome: "killed", pid: child.pid });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    await new Promise((res) => child.once("exit", res));
    expect(processAlive(child.pid!)).toBe(false);
    expect(readPidFile(file)).toBeUndefined();
  });

  it("never signals a process that is not the one recorded (a stale file whose pid was reused)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-pid-"));
    dirs.push(dir);
    const other = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      const file = path.join(dir, "x.pid");
      // Recorded by a process that started earlier and is gone: the pid now names `sleep`.
      fs.writeFileSync(file, `${other.pid}\n1\n`);
      expect(readPidFile(file)).toEqual({ pid: other.pid, alive: false });
      expect(await stopPidFile(file, 300)).toEqual({ outcome: "stale", pid: other.pid });
      expect(fs.existsSync(file)).toBe(false);
      // A file in the older format (the pid alone) is trusted only for a Sloth process.
      fs.writeFileSync(file, `${other.pid}\n`);
      expect(await stopPidFile(file, 300)).toEqual({ outcome: "stale", pid: other.pid });
      expect(processAlive(other.pid!)).toBe(true);
      // The file claimed for it names it for good.
      claimPidFile(file, other.pid!, "test");
      expect(readPidFile(file)).toEqual({ pid: other.pid, alive: true });
    } finally {
      other.kill("SIGKILL");
    }
  });
  it("counts an exited process its parent has not reaped (a zombie) as stopped", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-pid-"));
    dirs.push(dir);
    // The background sleep exits at once; its parent, now `sleep 30`, never waits for it.
    const parent = spawn("bash", ["-c", "sleep 0.05 & echo $!; exec sleep 30"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    try {
      const pid = Number(
        await new Promise<string>((r) => parent.stdout.once("data", (b) => r(String(b)))),
      );
      await expect
        .poll(() => fs.readFileSync(`/proc/${pid}/stat`, "utf8"), { timeout: 10_000 })
        .toMatch(/\) Z /);
      expect(processAlive(pid)).toBe(false);
      const file = path.join(dir, "zombie.pid");
      fs.writeFileSync(file, `${pid}\n`);
      const started = Date.now();
      expect((await stopPidFile(file, 5_000)).outcome).not.toBe("killed");
      expect(Date.now() - started).toBeLessThan(4_000);
      expect(processAlive(parent.pid!)).toBe(true);
    } finally {
      parent.kill("SIGKILL");
    }
  });
});
