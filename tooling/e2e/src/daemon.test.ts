import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import {
  AGENTD_BIN,
  alive,
  cleanup,
  onCleanup,
  runCli,
  spawnNode,
  startTestMaster,
  tempDir,
  waitFor,
} from "@sloth/testkit";
import { afterEach, describe, expect, it } from "vitest";

afterEach(cleanup);

/** Stops a daemon by pid at cleanup, in case a test failed before stopping it. */
function reap(pidFile: string): void {
  onCleanup(() => {
    const pid = Number.parseInt(
      fs.existsSync(pidFile) ? fs.readFileSync(pidFile, "utf8") : "0",
      10,
    );
    if (pid > 0 && alive(pid)) process.kill(pid, "SIGKILL");
  });
}

describe("daemons", () => {
  it("runs the master and an agent in the background with pid and log files", async () => {
    const dir = tempDir();
    reap(path.join(dir, "master", "master.pid"));
    reap(path.join(dir, "agents", "bg", "agent.pid"));
    const token = "daemon-token-that-must-not-leak-0123456789";
    const env = { SLOTH_RUNNER_TOKEN: token };
    const m = await runCli(
      ["--data-dir", dir, "master", "start", "--daemon", "--port", "0", "--bind", "127.0.0.1"],
      { env },
    );
    expect(m.code, m.stderr).toBe(0);
    const started =
      /Master started in the background \(pid (\d+)\), listening on 127\.0\.0\.1:(\d+)/.exec(
        m.stdout,
      );
    expect(started).not.toBeNull();
    const pid = Number(started![1]);
    const address = `127.0.0.1:${started![2]}`;
    expect(m.stdout).toContain(`Log: ${path.join(dir, "master", "master.log")}`);
    // The pid, then the process's start time.
    expect(fs.readFileSync(path.join(dir, "master", "master.pid"), "utf8").split("\n")[0]).toBe(
      String(pid),
    );
    expect(alive(pid)).toBe(true);
    const args = spawnSync("ps", ["-o", "args=", "-p", String(pid)], { encoding: "utf8" }).stdout;
    expect(args).toContain("master start");
    expect(args).not.toContain(token);

    const again = await runCli(["--data-dir", dir, "master", "start", "--daemon", "--port", "0"], {
      env,
    });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`error: master is already running (pid ${pid})`);

    const a = await runCli(
      [
        "--data-dir",
        dir,
        "agent",
        "start",
        "--daemon",
        "--name",
        "bg",
        "--master",
        address,
        "--port",
        "0",
        "--bind-address",
        "127.0.0.1",
      ],
      { env },
    );
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toMatch(
      /Agent 'bg' started in the background \(pid \d+\), listening on 127\.0\.0\.1:\d+/,
    );
    await waitFor(async () => {
      const r = await runCli(["--data-dir", dir, "agent", "list", "--json", "--master", address], {
        env,
      });
      return r.code === 0 && JSON.parse(r.stdout)[0]?.status === "active";
    });

    const stopAgent = await runCli(["--data-dir", dir, "agent", "stop", "bg", "--local"]);
    expect(stopAgent.stdout).toMatch(/^Agent 'bg' stopped \(pid \d+\)\n$/);
    const stop = await runCli(["--data-dir", dir, "master", "stop"]);
    expect(stop.stdout).toBe(`Master stopped (pid ${pid})\n`);
    expect(alive(pid)).toBe(false);
    expect(fs.existsSync(path.join(dir, "master", "master.pid"))).toBe(false);

    const log = fs
      .readFileSync(path.join(dir, "master", "master.log"), "utf8")
      .trim()
      .split("\n");
    const events = log.map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(events.map((e) => e.msg)).toEqual(
      expect.arrayContaining(["master listening", "agent registered", "master stopped"]),
    );
    for (const e of events) expect(typeof e.level).toBe("number");
    expect(log.join("\n")).not.toContain(token);

    const none = await runCli(["--data-dir", dir, "master", "stop"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/error: no master is running from this data dir/);
  });

  it("reports a failed start and exits 1", async () => {
    const dir = tempDir();
    const blocker = await import("node:net").then(
      (net) =>
        new Promise<import("node:net").Server>((resolve) => {
          const s = net.createServer();
          s.listen(0, "127.0.0.1", () => resolve(s));
        }),
    );
    onCleanup(() => new Promise<void>((r) => blocker.close(() => r())));
    const port = (blocker.address() as { port: number }).port;
    const r = await runCli([
      "--data-dir",
      dir,
      "master",
      "start",
      "--daemon",
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: port ${port} is already in use on 127.0.0.1`);
  });

  it("reports an agent whose token the master refuses as a failed start", async () => {
    const m = await startTestMaster();
    const dir = tempDir();
    const tokenFile = path.join(dir, "wrong.token");
    fs.writeFileSync(tokenFile, "wrong-token-of-another-cluster\n");
    const r = await runCli([
      "--data-dir",
      dir,
      "agent",
      "start",
      "--daemon",
      "--name",
      "refused",
      "--master",
      m.address,
      "--token-file",
      tokenFile,
      "--port",
      "0",
      "--bind-address",
      "127.0.0.1",
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `error: cannot register with master at ${m.address}: it refused the cluster token`,
    );
    expect(r.stderr).not.toContain("wrong-token-of-another-cluster");
    expect(fs.existsSync(path.join(dir, "agents", "refused", "agent.pid"))).toBe(false);
  });

  it("keeps a background agent alive while its master is down, until the master comes", async () => {
    const dir = tempDir();
    const pidFile = path.join(dir, "agents", "early", "agent.pid");
    reap(pidFile);
    // A free port for the master that is not up yet.
    const probe = await startTestMaster();
    const port = probe.port;
    const token = probe.token;
    await probe.stop();
    const a = await runCli(
      [
        "--data-dir",
        dir,
        "agent",
        "start",
        "--daemon",
        "--name",
        "early",
        "--master",
        `127.0.0.1:${port}`,
        "--port",
        "0",
        "--bind-address",
        "127.0.0.1",
      ],
      { env: { SLOTH_RUNNER_TOKEN: token } },
    );
    expect(a.code, a.stderr).toBe(0);
    const pid = Number.parseInt(fs.readFileSync(pidFile, "utf8"), 10);
    // Several registration retries later it still runs (it used to die at the second).
    await new Promise((r) => setTimeout(r, 3000));
    expect(alive(pid)).toBe(true);
    const m = await startTestMaster({ port, token });
    // Its backoff (jittered, doubling to 30 s) may wait a while before the next try.
    await waitFor(() => m.master.registry.get("early")?.status === "active", {
      timeoutMs: 45_000,
      what: "the agent to register once the master is up",
    });
    expect((await runCli(["--data-dir", dir, "agent", "stop", "early", "--local"])).code).toBe(0);
    expect(fs.readFileSync(path.join(dir, "agents", "early", "agent.log"), "utf8")).not.toContain(
      "ERR_IPC_CHANNEL_CLOSED",
    );
  }, 90_000);

  it("replaces a stale pid file", async () => {
    const dir = tempDir();
    reap(path.join(dir, "master", "master.pid"));
    const dead = spawnNode(process.execPath, ["-e", "0"]);
    await dead.exited;
    fs.mkdirSync(path.join(dir, "master"), { recursive: true });
    fs.writeFileSync(path.join(dir, "master", "master.pid"), `${dead.child.pid}\n`);
    const stale = await runCli(["--data-dir", dir, "master", "stop"]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain(`removed a stale pid file naming pid ${dead.child.pid}`);
    fs.writeFileSync(path.join(dir, "master", "master.pid"), `${dead.child.pid}\n`);
    const m = await runCli([
      "--data-dir",
      dir,
      "master",
      "start",
      "--daemon",
      "--port",
      "0",
      "--bind",
      "127.0.0.1",
    ]);
    expect(m.code, m.stderr).toBe(0);
    expect((await runCli(["--data-dir", dir, "master", "stop"])).code).toBe(0);
  });
});

describe("systemd units", () => {
  const verify = (file: string) => {
    const which = spawnSync("sh", ["-c", "command -v systemd-analyze"], { encoding: "utf8" });
    if (which.status !== 0) return;
    const r = spawnSync("systemd-analyze", ["verify", file], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
  };

  it("writes an agent unit with the given flags", async () => {
    const unitDir = tempDir();
    const p = spawnNode(AGENTD_BIN, [
      "install-service",
      "--name",
      "web-1",
      "--master",
      "10.0.0.1:50053",
      "--token-file",
      "/etc/sloth/token",
      "--label",
      "role=web",
      "--report-address",
      "192.168.1.17:50052",
      "--unit-dir",
      unitDir,
    ]);
    expect(await p.exited, p.stderr()).toBe(0);
    const file = path.join(unitDir, "sloth-runner-agent-web-1.service");
    expect(p.stdout()).toContain(`Wrote ${file}`);
    const unit = fs.readFileSync(file, "utf8");
    for (const line of [
      "Description=Sloth Runner Agent - web-1",
      "Restart=always",
      "LimitNOFILE=65536",
      "NoNewPrivileges=true",
      "  --name web-1 \\",
      "  --master 10.0.0.1:50053 \\",
      "  --token-file /etc/sloth/token \\",
      "  --report-address 192.168.1.17:50052",
      "WantedBy=multi-user.target",
    ]) {
      expect(unit).toContain(line);
    }
    expect(unit).not.toContain("--unit-dir");
    verify(file);
  });

  it("prints the master unit with --print", async () => {
    const r = await runCli([
      "--data-dir",
      "/var/lib/sloth",
      "master",
      "install-service",
      "--port",
      "50053",
      "--print",
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /ExecStart=\S+node \\\n {2}\S+sloth-runner\.js \\\n {2}--data-dir \/var\/lib\/sloth \\\n {2}master \\\n {2}start \\\n {2}--port 50053\n/,
    );
    const file = path.join(tempDir(), "sloth-runner-master.service");
    fs.writeFileSync(file, r.stdout);
    verify(file);
  });
});
