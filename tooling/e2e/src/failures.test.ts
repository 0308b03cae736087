import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { agentClient, connect } from "@sloth/client";
import {
  CLI_BIN,
  cleanup,
  runCli,
  spawnAgent,
  spawnMaster,
  spawnNode,
  tempDir,
  waitFor,
} from "@sloth/testkit";
import { afterEach, describe, expect, it } from "vitest";

afterEach(cleanup);

async function cluster(names: string[] = ["a1"]) {
  const master = await spawnMaster();
  const tokenFile = path.join(master.dataDir, "master", "token");
  const agents = [];
  for (const name of names)
    agents.push(await spawnAgent({ name, master: master.address, tokenFile }));
  const cli = (...args: string[]) =>
    runCli(["--data-dir", master.dataDir, ...args], {
      env: { SLOTH_RUNNER_MASTER_ADDR: master.address },
    });
  const status = async (name: string) => {
    const r = await cli("agent", "list", "--json");
    return (JSON.parse(r.stdout) as Array<{ name: string; status: string }>).find(
      (a) => a.name === name,
    )?.status;
  };
  return { master, tokenFile, agents, cli, status };
}

describe("failures and recovery", () => {
  it("marks a killed agent inactive after TTL + grace; runs to it fail fast", async () => {
    const { agents, cli, status } = await cluster(["doomed"]);
    agents[0]!.proc.kill("SIGKILL", true);
    await agents[0]!.proc.exited;
    await waitFor(async () => (await status("doomed")) === "inactive", {
      timeoutMs: 15_000,
      what: "inactive",
    });
    const t0 = Date.now();
    const r = await cli("agent", "run", "doomed", "echo hi");
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.code).toBe(255);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(
      /error: agent 'doomed' is inactive \(last heartbeat \d+s ago\); start the agent again/,
    );
  });

  it("keeps agents, untouched, across a master restart on the same data dir", async () => {
    const master = await spawnMaster();
    const tokenFile = path.join(master.dataDir, "master", "token");
    const agent = await spawnAgent({ name: "steady", master: master.address, tokenFile });
    const getAgent = async (address: string) =>
      JSON.parse(
        (
          await runCli([
            "--data-dir",
            master.dataDir,
            "agent",
            "get",
            "steady",
            "--json",
            "--master",
            address,
          ])
        ).stdout,
      ) as { status: string; registeredAt: string };
    const before = await getAgent(master.address);
    const pid = agent.proc.child.pid;
    master.proc.kill("SIGKILL");
    await master.proc.exited;
    await agent.proc.waitForOutput(/cannot (register|heartbeat)|failed/i, 15_000);
    const again = await spawnMaster({ dataDir: master.dataDir, port: master.port });
    expect(again.port).toBe(master.port);
    const cli = (...args: string[]) =>
      runCli(["--data-dir", master.dataDir, ...args], {
        env: { SLOTH_RUNNER_MASTER_ADDR: again.address },
      });
    const restartedAt = Date.now();
    await waitFor(
      async () => {
        const list = JSON.parse((await cli("agent", "list", "--json")).stdout) as Array<{
          status: string;
          lastSeen: string;
        }>;
        return list[0]?.status === "active" && Date.parse(list[0].lastSeen) > restartedAt;
      },
      { timeoutMs: 40_000, what: "a heartbeat from the agent after the restart" },
    );
    const r = await cli("agent", "run", "steady", "--quiet", "echo back");
    expect(r.stdout, r.stderr).toBe("back\n");
    expect(agent.proc.child.exitCode).toBeNull();
    expect(agent.proc.child.pid).toBe(pid);
    expect((await getAgent(again.address)).registeredAt).toBe(before.registeredAt);
  });

  it("re-registers a live agent after `agent delete`", async () => {
    const { agents, cli } = await cluster(["phoenix"]);
    const d = await cli("agent", "delete", "phoenix", "--yes");
    expect(d.code).toBe(0);
    expect(d.stdout).toBe("Agent 'phoenix' deleted\n");
    await agents[0]!.proc.waitForOutput(/registered again|forgotten|no longer knows/, 15_000);
    await waitFor(async () => {
      const list = JSON.parse((await cli("agent", "list", "--json")).stdout) as Array<{
        name: string;
        status: string;
      }>;
      return list.some((a) => a.name === "phoenix" && a.status === "active");
    });
    const again = await cli("agent", "delete", "nobody");
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/agent 'nobody' not found/);
  });

  it("refuses a second agent taking a held name", async () => {
    const { master, tokenFile } = await cluster(["taken"]);
    const other = tempDir();
    const p = spawnAgent({
      name: "taken",
      master: master.address,
      tokenFile,
      dataDir: other,
      waitRegistered: false,
    });
    const proc = (await p).proc;
    expect(await proc.exited).toBe(1);
    expect(proc.stderr()).toContain(
      "agent name 'taken' is held by another agent; run `sloth-runner agent delete taken`",
    );
    expect(proc.stderr()).not.toMatch(/\n\s+at /);
  });

  it("refuses missing and wrong tokens at the master and at the agent; nothing runs", async () => {
    const { master, agents } = await cluster(["guarded"]);
    const noToken = await runCli([
      "--data-dir",
      tempDir(),
      "agent",
      "list",
      "--master",
      master.address,
    ]);
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(
      /error: no cluster token for master at 127\.0\.0\.1:\d+; pass --token-file/,
    );

    const badFile = path.join(tempDir(), "bad-token");
    fs.writeFileSync(badFile, "wrong-token-of-enough-length\n");
    const marker = path.join(tempDir(), "ran");
    const wrong = await runCli([
      "--data-dir",
      tempDir(),
      "agent",
      "run",
      "guarded",
      "--master",
      master.address,
      "--token-file",
      badFile,
      `touch ${marker}`,
    ]);
    expect(wrong.code).toBe(255);
    expect(wrong.stderr).toMatch(/refused the request: invalid token; pass the cluster token/);
    expect(wrong.stderr).not.toContain("wrong-token");

    for (const token of [undefined, "wrong-token"]) {
      const conn = connect({ address: agents[0]!.address, token });
      try {
        const stream = agentClient(conn).runCommand({ spec: { command: `touch ${marker}` } });
        const err = await (async () => {
          for await (const _ of stream) {
            // drain
          }
        })().catch((e: unknown) => e);
        expect(String(err)).toMatch(/unauthenticated/i);
      } finally {
        conn.close();
      }
    }
    // Health stays open so reachability can be probed.
    const conn = connect({ address: agents[0]!.address });
    try {
      expect((await agentClient(conn).health({})).name).toBe("guarded");
    } finally {
      conn.close();
    }
    expect(fs.existsSync(marker)).toBe(false);
  });
});

describe("shutdown and lost links", () => {
  it("stops an agent with `agent stop`", async () => {
    const { agents, cli, status } = await cluster(["stoppable"]);
    const r = await cli("agent", "stop", "stoppable");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("Agent 'stoppable' is stopping\n");
    expect(await agents[0]!.proc.exited).toBe(0);
    await waitFor(async () => (await status("stoppable")) === "inactive", { timeoutMs: 15_000 });
  });

  it("kills the remote command when the master dies mid-run", async () => {
    const { master } = await cluster(["orphan-guard"]);
    const marker = `601.${Date.now() % 1e6}`;
    const run = spawnNode(CLI_BIN, [
      "--data-dir",
      master.dataDir,
      "agent",
      "run",
      "orphan-guard",
      "--master",
      master.address,
      `sleep ${marker}`,
    ]);
    const running = () => spawnSync("pgrep", ["-f", `^sleep ${marker}$`]).status === 0;
    await waitFor(running, { what: "the remote sleep to start" });
    master.proc.kill("SIGKILL");
    expect(await run.exited).toBe(255);
    expect(run.stderr()).toMatch(/error: .*master at 127\.0\.0\.1:\d+/);
    await waitFor(() => !running(), { timeoutMs: 10_000, what: "the remote sleep to be killed" });
  });

  it("lets in-flight runs finish when the master gets SIGTERM", async () => {
    const { master } = await cluster(["graceful"]);
    const marker = `1.5${Date.now() % 1e6}`;
    const run = spawnNode(CLI_BIN, [
      "--data-dir",
      master.dataDir,
      "agent",
      "run",
      "graceful",
      "--quiet",
      "--master",
      master.address,
      `sleep ${marker}; echo finished`,
    ]);
    await waitFor(() => spawnSync("pgrep", ["-f", `^sleep ${marker}$`]).status === 0, {
      what: "the run to start",
    });
    master.proc.kill("SIGTERM");
    const code = await run.exited;
    expect(code, `${run.stderr()}\n--- master ---\n${master.proc.stderr()}`).toBe(0);
    expect(run.stdout()).toBe("finished\n");
    expect(await master.proc.exited).toBe(0);
  });
});

describe("bad input", () => {
  it("names the address of an unreachable master", async () => {
    const dir = tempDir();
    const r = await runCli(["--data-dir", dir, "agent", "list", "--master", "127.0.0.1:1"], {
      env: { SLOTH_RUNNER_TOKEN: "x".repeat(20) },
    });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      "error: cannot reach master at 127.0.0.1:1: connection refused; check that the master runs (`sloth-runner master start`) or choose another with --master",
    );
  });

  it("refuses a token too short to be a cluster token before dialling, without showing it", async () => {
    const dir = tempDir();
    const r = await runCli(["--data-dir", dir, "agent", "list", "--master", "127.0.0.1:1"], {
      env: { SLOTH_RUNNER_TOKEN: "hunter2" },
    });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      "error: the cluster token in SLOTH_RUNNER_TOKEN is too short (7 characters; a cluster token has at least 16); use the token the master wrote to <data dir>/master/token on its machine",
    );
  });

  it("names a damaged database file and how to recover, touching nothing", async () => {
    const dir = tempDir();
    const garbage = Buffer.alloc(8192, 0x5a);
    const damaged = (rel: string) => {
      const file = path.join(dir, rel);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, garbage);
      return file;
    };
    const registry = damaged("master/registry.db");
    const start = await runCli(["--data-dir", dir, "master", "start", "--port", "0"]);
    expect(start.code).toBe(1);
    expect(start.stderr).toContain(
      `error: cannot open the agent registry ${registry}: it is not a SQLite database; move it aside`,
    );
    const masters = damaged("masters.db");
    const list = await runCli(["--data-dir", dir, "master", "list"]);
    expect(list.code).toBe(1);
    expect(list.stderr.trim()).toMatch(
      new RegExp(
        `^error: cannot open the list of masters ${masters}: it is not a SQLite database; move it aside and add your masters again`,
      ),
    );
    const history = damaged("history.db");
    const runs = await runCli(["--data-dir", dir, "runs", "list"]);
    expect(runs.code).toBe(1);
    expect(runs.stderr.trim()).toMatch(
      new RegExp(`^error: cannot open the run history ${history}: it is not a SQLite database`),
    );
    for (const r of [start, list, runs]) expect(r.stderr).not.toMatch(/\n\s+at |This is a bug/);
    for (const f of [registry, masters, history]) expect(fs.readFileSync(f)).toEqual(garbage);
  });

  it("rejects bad addresses, unknown masters and bad names", async () => {
    const dir = tempDir();
    const cases: Array<[string[], string]> = [
      [
        ["agent", "list", "--master", "nope"],
        "error: master 'nope' not found; run `sloth-runner master list`",
      ],
      [
        ["agent", "list", "--master", "host:0"],
        "error: invalid address 'host:0': port 0 is outside 1-65535",
      ],
      [
        ["master", "add", "x", "bad host:1"],
        "error: invalid address 'bad host:1': 'bad host' is not a valid host name",
      ],
      [["master", "add", "x", "1.2.3.4"], "error: invalid address '1.2.3.4': missing ':PORT'"],
      [
        ["master", "add", "a:b", "1.2.3.4:5"],
        "error: invalid master name 'a:b': names cannot contain ':'",
      ],
      [
        ["master", "select", "ghost"],
        "error: master 'ghost' not found; run `sloth-runner master list`",
      ],
      [
        ["master", "update", "ghost", "1.2.3.4:5"],
        "error: master 'ghost' not found; run `sloth-runner master list`",
      ],
      [
        ["master", "remove", "ghost", "--yes"],
        "error: master 'ghost' not found; run `sloth-runner master list`",
      ],
    ];
    for (const [args, expected] of cases) {
      const r = await runCli(["--data-dir", dir, ...args], {
        env: { SLOTH_RUNNER_TOKEN: "x".repeat(20) },
      });
      expect(r.code, args.join(" ")).not.toBe(0);
      expect(r.stderr.split("\n")[0], args.join(" ")).toContain(expected);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it("reports a port in use for the master and the agent", async () => {
    const master = await spawnMaster();
    const dir = tempDir();
    const m = await runCli([
      "--data-dir",
      dir,
      "master",
      "start",
      "--port",
      String(master.port),
      "--bind",
      "127.0.0.1",
    ]);
    expect(m.code).toBe(1);
    expect(m.stderr).toContain(
      `error: port ${master.port} is already in use on 127.0.0.1; stop the other process or choose another port with --port`,
    );
    const tokenFile = path.join(master.dataDir, "master", "token");
    const a = await runCli([
      "--data-dir",
      dir,
      "agent",
      "start",
      "--name",
      "x",
      "--master",
      master.address,
      "--token-file",
      tokenFile,
      "--port",
      String(master.port),
      "--bind-address",
      "127.0.0.1",
    ]);
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(new RegExp(`port ${master.port} is already in use`));
  });

  it("prints a stack trace only with --debug", async () => {
    const dir = tempDir();
    const plain = await runCli(["--data-dir", dir, "master", "select", "ghost"]);
    expect(plain.stderr.trim().split("\n")).toHaveLength(1);
    const debug = await runCli(["--data-dir", dir, "master", "select", "ghost", "--debug"]);
    expect(debug.stderr).toMatch(/\n\s+at /);
  });
});
