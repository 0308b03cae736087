import { spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import {
  CLI_BIN,
  cleanup,
  onCleanup,
  runCli,
  spawnAgent,
  spawnMaster,
  spawnNode,
  type TestProcess,
  tempDir,
  waitFor,
} from "@sloth/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// One master and three agents, spawned from the built binaries, shared by
// the tests of this file (none of them stops a process).
let master: TestProcess;
let tokenFile: string;
const agents: TestProcess[] = [];

beforeAll(async () => {
  master = await spawnMaster();
  tokenFile = path.join(master.dataDir, "master", "token");
  const exits: Record<string, string> = { alpha: "0", beta: "3", gamma: "5" };
  for (const name of ["alpha", "beta", "gamma"]) {
    agents.push(
      await spawnAgent({
        name,
        master: master.address,
        tokenFile,
        args: ["--label", `name=${name}`, "--label", "tier=test"],
        env: { E2E_EXIT: exits[name] },
      }),
    );
  }
}, 90_000);

afterAll(cleanup);

const cli = (...args: string[]) =>
  runCli(["--data-dir", master.dataDir, ...args], {
    env: { SLOTH_RUNNER_MASTER_ADDR: master.address },
  });

describe("a master with three agents", () => {
  it("lists the agents as a table", async () => {
    const r = await cli("agent", "list");
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+ADDRESS\s+STATUS\s+VERSION\s+LAST SEEN\s+LABELS$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(["alpha", "beta", "gamma"]);
    for (const l of lines.slice(1))
      expect(l).toMatch(/127\.0\.0\.1:\d+\s+active\s+\d+\.\d+\.\d+\s+/);
  });

  it("lists the agents as JSON", async () => {
    const r = await cli("agent", "list", "--json");
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    expect(list.map((a) => a.name)).toEqual(["alpha", "beta", "gamma"]);
    for (const a of list) {
      expect(a).toMatchObject({ status: "active", labels: { tier: "test", name: a.name } });
      expect(new Date(String(a.lastSeen)).toISOString()).toBe(a.lastSeen);
      expect(typeof a.version).toBe("string");
    }
    expect(list.map((a) => a.address).sort()).toEqual(agents.map((a) => a.address).sort());
    expect(r.stdout).not.toContain(fs.readFileSync(tokenFile, "utf8").trim());
  });

  it("shows one agent and its metrics, as text and JSON", async () => {
    const get = await cli("agent", "get", "beta", "--json");
    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout)).toMatchObject({ name: "beta", status: "active" });
    const m = await cli("agent", "metrics", "beta", "--json");
    expect(m.code).toBe(0);
    const metrics = JSON.parse(m.stdout) as Record<string, number>;
    expect(metrics.cpuCount).toBeGreaterThan(0);
    expect(metrics.memoryTotalBytes).toBeGreaterThan(metrics.memoryUsedBytes ?? 0);
    expect(metrics.processRssBytes).toBeGreaterThan(0);
    const text = await cli("agent", "metrics", "beta");
    expect(text.stdout).toMatch(/CPU: .*% of \d+ cores/);
  });

  it("streams stdout and stderr apart and exits with the remote code", async () => {
    const r = await cli(
      "agent",
      "run",
      "alpha",
      "printf 'out1\\n'; printf 'err1\\n' >&2; printf 'out2'; exit 3",
    );
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("out1\nout2");
    expect(r.stderr).toContain("err1\n");
    expect(r.stderr).toMatch(/Agent: alpha/);
    expect(r.stderr).toMatch(/Command: printf/);
    expect(r.stderr).toMatch(/✗ exit 3 on alpha \(\d+(ms|\.\d+s)\)/);
  });

  it("passes workdir and env, and reports signals as 128+N", async () => {
    const dir = tempDir();
    const r = await cli(
      "agent",
      "run",
      "gamma",
      "--workdir",
      dir,
      "--env",
      "GREETING=hi there",
      "--",
      "pwd; echo $GREETING",
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${fs.realpathSync(dir)}\nhi there\n`);
    const k = await cli("agent", "run", "gamma", "kill -TERM $$");
    expect(k.code).toBe(128 + 15);
    expect(k.stderr).toMatch(/killed by SIGTERM/);
  });

  it("kills a command at its timeout", async () => {
    const t0 = Date.now();
    const r = await cli("agent", "run", "beta", "--timeout", "1s", "sleep 30");
    expect(r.code).toBeGreaterThan(128);
    expect(r.stderr).toMatch(/timed out after 1\.00s/);
    expect(Date.now() - t0).toBeLessThan(15_000);
  });

  it("exits 255 when the command cannot start", async () => {
    const r = await cli("agent", "run", "alpha", "--workdir", "/no/such/dir", "true");
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/could not start: .*\/no\/such\/dir/);
  });

  it("relays 10 MB of output intact", async () => {
    const r = await runCli(
      [
        "--data-dir",
        master.dataDir,
        "agent",
        "run",
        "alpha",
        "--quiet",
        "--master",
        master.address,
        "head -c 10485760 /dev/zero | tr '\\0' 'x'; echo; seq 1 1000",
      ],
      { timeoutMs: 60_000 },
    );
    expect(r.code).toBe(0);
    const expected = `${"x".repeat(10 * 1024 * 1024)}\n${Array.from({ length: 1000 }, (_, i) => i + 1).join("\n")}\n`;
    expect(r.stdout.length).toBe(expected.length);
    expect(crypto.createHash("sha256").update(r.stdout).digest("hex")).toBe(
      crypto.createHash("sha256").update(expected).digest("hex"),
    );
  });

  it("relays a 1 MB line without a newline", async () => {
    const r = await cli(
      "agent",
      "run",
      "beta",
      "--quiet",
      "head -c 1048576 /dev/urandom | base64 -w0 | head -c 1048576",
    );
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(1048576);
    expect(r.stdout).not.toContain("\n");
  });

  it("shows a line as soon as it is produced", async () => {
    const p = spawnNode(CLI_BIN, [
      "--data-dir",
      master.dataDir,
      "agent",
      "run",
      "gamma",
      "--master",
      master.address,
      "echo first; sleep 3; echo second",
    ]);
    const t0 = Date.now();
    await waitFor(() => p.stdout().includes("first"), { timeoutMs: 10_000, intervalMs: 10 });
    const firstAt = Date.now() - t0;
    expect(p.stdout()).not.toContain("second");
    expect(await p.exited).toBe(0);
    expect(Date.now() - t0 - firstAt).toBeGreaterThan(2000);
  });

  it("cancels the remote command on SIGINT: no sleep left behind", async () => {
    const marker = `600.${crypto.randomInt(1e6)}`;
    const p = spawnNode(CLI_BIN, [
      "--data-dir",
      master.dataDir,
      "agent",
      "run",
      "alpha",
      "--master",
      master.address,
      `sleep ${marker}`,
    ]);
    const running = () => {
      const r = spawnSync("pgrep", ["-f", `^sleep ${marker}$`]);
      return r.status === 0;
    };
    await waitFor(running, { what: "the remote sleep to start" });
    p.kill("SIGINT");
    expect(await p.exited).toBe(130);
    expect(p.stderr()).toMatch(/interrupted/);
    await waitFor(() => !running(), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: "the remote sleep to be killed",
    });
  });

  it("stops the remote command when the reader goes away (| head -1): exit 141, nothing left", async () => {
    const marker = `yes-${crypto.randomInt(1e6)}`;
    const p = spawnNode(CLI_BIN, [
      "--data-dir",
      master.dataDir,
      "agent",
      "run",
      "alpha",
      "-q",
      "--master",
      master.address,
      `exec -a ${marker} yes`,
    ]);
    await waitFor(() => p.stdout().length > 0, { what: "the first output" });
    // What `| head -1` does once it has its line.
    p.child.stdout?.destroy();
    expect(await p.exited).toBe(141);
    expect(p.stderr()).toBe("");
    await waitFor(() => spawnSync("pgrep", ["-f", `^${marker}`]).status !== 0, {
      timeoutMs: 5000,
      what: "the remote command to be killed",
    });
  });

  it("Ctrl-C on a fan-out cancels every agent's command and reports them as interrupted", async () => {
    const marker = `601.${crypto.randomInt(1e6)}`;
    const p = spawnNode(CLI_BIN, [
      "--data-dir",
      master.dataDir,
      "agent",
      "run",
      "--label",
      "tier=test",
      "--master",
      master.address,
      `sleep ${marker}`,
    ]);
    const count = () =>
      (
        spawnSync("pgrep", ["-f", `^sleep ${marker}$`])
          .stdout?.toString()
          .trim()
          .split("\n") ?? []
      ).filter(Boolean).length;
    await waitFor(() => count() === 3, { what: "the three remote sleeps to start" });
    p.kill("SIGINT");
    expect(await p.exited).toBe(130);
    expect(p.stderr()).toMatch(/alpha\s+-\s+\S+\s+interrupted/);
    expect(p.stderr()).toMatch(/✗ interrupted: cancelled on 3 agent\(s\)/);
    expect(p.stderr()).not.toMatch(/failed in/);
    await waitFor(() => count() === 0, {
      timeoutMs: 10_000,
      what: "the remote sleeps to be killed",
    });
  });

  it("filters the list by label and name glob", async () => {
    const byLabel = JSON.parse(
      (await cli("agent", "list", "--json", "--label", "tier=test", "--label", "name=beta")).stdout,
    );
    expect(byLabel.map((a: { name: string }) => a.name)).toEqual(["beta"]);
    const byGlob = JSON.parse((await cli("agent", "list", "--json", "--name", "*a")).stdout);
    expect(byGlob.map((a: { name: string }) => a.name)).toEqual(["alpha", "beta", "gamma"]);
    const none = await cli("agent", "list", "--name", "web-*");
    expect(none.stdout).toBe("No agents match the selection\n");
  });

  it("fans a command out to every matching agent, prefixing lines and exiting with the worst code", async () => {
    const r = await cli(
      "agent",
      "run",
      "--label",
      "tier=test",
      "--parallel",
      "2",
      "echo one; echo two >&2; exit $E2E_EXIT",
    );
    expect(r.code).toBe(5);
    const out = r.stdout.trim().split("\n").sort();
    expect(out).toEqual(["alpha | one", "beta  | one", "gamma | one"]);
    for (const n of ["alpha", "beta ", "gamma"]) expect(r.stderr).toContain(`${n} | two\n`);
    expect(r.stderr).toMatch(/AGENT\s+EXIT\s+DURATION/);
    expect(r.stderr).toMatch(/alpha\s+0\s+\S+\s+ok/);
    expect(r.stderr).toMatch(/beta\s+3\s+\S+\s+failed/);
    expect(r.stderr).toMatch(/3 agent\(s\), 1 succeeded, 2 failed/);
  });

  it("gives one JSON object per agent with --json", async () => {
    const r = await cli("agent", "run", "--name", "[ab]*", "--json", "printf hi; exit $E2E_EXIT");
    expect(r.code).toBe(3);
    const results = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    expect(results.map((x) => [x.agent, x.exitCode, x.stdout])).toEqual([
      ["alpha", 0, "hi"],
      ["beta", 3, "hi"],
    ]);
    // One agent by name: one object, and nothing else on stdout.
    const one = await cli(
      "agent",
      "run",
      "beta",
      "--json",
      "printf hi; printf oops >&2; exit $E2E_EXIT",
    );
    expect(one.code).toBe(3);
    expect(JSON.parse(one.stdout)).toMatchObject({
      agent: "beta",
      exitCode: 3,
      signal: null,
      error: null,
      stdout: "hi",
      stderr: "oops",
      stdoutBytes: 2,
      truncated: false,
    });
    // Past 16 MiB a stream is counted, not held.
    const big = await cli("agent", "run", "beta", "--json", "head -c 20000000 /dev/zero");
    expect(big.code).toBe(0);
    const parsed = JSON.parse(big.stdout) as Record<string, unknown>;
    expect(parsed).toMatchObject({ stdoutBytes: 20_000_000, truncated: true });
    expect((parsed.stdout as string).length).toBe(16 * 1024 * 1024);
  });

  it("refuses a selection that matches no active agent", async () => {
    const r = await cli("agent", "run", "--label", "role=none", "true");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "error: no active agent matches the selection; check `sloth-runner agent list` with the same --label and --name\n",
    );
  });

  it("refuses an agent name given together with a selection, running nothing", async () => {
    const r = await cli("agent", "run", "alpha", "--label", "tier=test", "echo hi");
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(
      /^error: 'alpha' is an agent name, and --label\/--name select agents too; /,
    );
  });

  it("runs piped input in a shell on an agent through the master, with its exit code", async () => {
    const dir = tempDir();
    const p = spawnNode(
      CLI_BIN,
      ["--data-dir", master.dataDir, "agent", "shell", "beta", "--workdir", dir, "--env", "X=1"],
      { env: { SLOTH_RUNNER_MASTER_ADDR: master.address }, stdin: "pipe" },
    );
    p.child.stdin?.end('mkdir a && cd a\npwd; echo "x=$X"; echo warn >&2\nexit 4\n');
    expect(await p.exited).toBe(4);
    expect(p.stdout()).toBe(`${fs.realpathSync(dir)}/a\nx=1\n`);
    expect(p.stderr()).toBe("warn\n");
    const gone = await cli("agent", "shell", "nobody");
    expect(gone.code).toBe(255);
    expect(gone.stderr.trim().split("\n")).toHaveLength(1);
    expect(gone.stderr).toContain("agent 'nobody' not found");
    const bad = await runCli(["--data-dir", tempDir(), "agent", "shell", "beta"], {
      env: { SLOTH_RUNNER_MASTER_ADDR: master.address, SLOTH_RUNNER_TOKEN: "not-the-token-000" },
    });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/token/i);
  });

  const script = spawnSync("script", ["--version"]).status === 0;
  it.skipIf(!script)(
    "opens a terminal shell when run from a terminal: keystrokes go as typed, Ctrl-C stays remote",
    async () => {
      // `script` gives the CLI a terminal, as a user's would be.
      const cmd = `stty rows 24 cols 90; exec ${process.execPath} ${CLI_BIN} --data-dir ${master.dataDir} agent shell gamma`;
      const child = spawn("script", ["-q", "-f", "-e", "-c", cmd, "/dev/null"], {
        env: {
          ...process.env,
          SLOTH_RUNNER_MASTER_ADDR: master.address,
          NO_COLOR: "1",
          TERM: "xterm",
        },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (b: Buffer) => {
        out += b.toString();
      });
      const exited = new Promise<number | null>((r) => child.on("close", r));
      onCleanup(() => {
        child.kill("SIGKILL");
      });
      const type = (s: string) => child.stdin.write(s);
      await waitFor(() => out.includes("Connected to gamma"), { what: `the banner\n${out}` });
      type("tty; echo T=$TERM\r");
      await waitFor(() => /T=xterm/.test(out), { what: `tty output\n${out}` });
      expect(out).toMatch(/\/dev\/pts\/\d+/);
      type("sleep 60; echo slept\r");
      await new Promise((r) => setTimeout(r, 700));
      type("\u0003");
      type("echo still-$((40+2))\r");
      await waitFor(() => out.includes("still-42"), { what: `the shell after Ctrl-C\n${out}` });
      type("exit 6\r");
      expect(await exited).toBe(6);
      expect(out).not.toMatch(/\nslept/);
    },
    40_000,
  );

  it("refuses an unknown agent with a clear error", async () => {
    const r = await cli("agent", "run", "nobody", "true");
    expect(r.code).toBe(255);
    // The error alone: no header for a command that never ran.
    expect(r.stderr.trim()).toBe(
      "error: agent 'nobody' not found; run `sloth-runner agent list` to see the registered agents",
    );
    const g = await cli("agent", "get", "nobody");
    expect(g.code).toBe(1);
    expect(g.stderr.trim()).toBe(
      "error: agent 'nobody' not found; run `sloth-runner agent list` to see the registered agents",
    );
  });
});
