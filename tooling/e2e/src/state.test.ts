import fs from "node:fs";
import path from "node:path";
import {
  CLI_BIN,
  cleanup,
  runCli,
  spawnAgent,
  spawnMaster,
  spawnNode,
  tempDir,
} from "@sloth/testkit";
import { afterEach, describe, expect, it } from "vitest";

afterEach(cleanup);

function cliIn(dir: string) {
  return (...args: string[]) => runCli(["--data-dir", dir, "state", ...args]);
}

describe("sloth-runner state get/set/delete/list", () => {
  it("stores strings, and JSON values with --json-value and a TTL", async () => {
    const cli = cliIn(tempDir());
    expect(await cli("set", "greeting", "hello world")).toEqual({
      code: 0,
      stdout: "",
      stderr: "",
    });
    expect((await cli("get", "greeting")).stdout).toBe("hello world\n");
    expect((await cli("set", "n", "42")).code).toBe(0);
    expect((await cli("get", "n", "--json")).stdout).toContain('"value": "42"');
    expect((await cli("set", "cfg", '{"replicas":3}', "--json-value", "--ttl", "1h")).code).toBe(0);
    expect((await cli("get", "cfg")).stdout).toBe('{"replicas":3}\n');
    const entry = JSON.parse((await cli("get", "cfg", "--json")).stdout) as Record<string, unknown>;
    expect(entry).toMatchObject({ namespace: "default", key: "cfg", value: { replicas: 3 } });
    expect(typeof entry.expiresAt).toBe("string");
  });

  it("keeps namespaces apart, lists with a prefix, and deletes", async () => {
    const cli = cliIn(tempDir());
    expect((await cli("set", "greeting", "hello world")).code).toBe(0);
    expect((await cli("set", "n", "42")).code).toBe(0);
    expect((await cli("set", "cfg", '{"replicas":3}', "--json-value", "--ttl", "1h")).code).toBe(0);
    expect((await cli("set", "only-here", "x", "--namespace", "team-a")).code).toBe(0);
    const other = await cli("get", "only-here");
    expect(other.code).toBe(1);
    const listed = await cli("list", "--json", "--namespace", "team-a");
    expect((JSON.parse(listed.stdout) as { key: string }[]).map((e) => e.key)).toEqual([
      "only-here",
    ]);

    const list = await cli("list");
    expect(list.stdout.replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/, "<time>")).toBe(
      [
        "KEY       VALUE           EXPIRES",
        'cfg       {"replicas":3}  <time>',
        "greeting  hello world     -",
        "n         42              -",
        "",
      ].join("\n"),
    );
    expect((await cli("list", "gr")).stdout).toContain("greeting");
    expect((await cli("list", "--namespace", "empty")).stdout).toBe(
      "No keys in namespace 'empty'\n",
    );

    expect(await cli("delete", "greeting")).toEqual({ code: 0, stdout: "", stderr: "" });
    expect((await cli("get", "greeting")).code).toBe(1);
  });

  it("reports a missing key with exit 1 and the namespace", async () => {
    const cli = cliIn(tempDir());
    expect(await cli("get", "k")).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "error: key 'k' not found in namespace 'default'; run `sloth-runner state list --namespace default` to see its keys\n",
    });
    const del = await cli("delete", "k", "--namespace", "ops");
    expect(del.code).toBe(1);
    expect(del.stderr).toContain("key 'k' not found in namespace 'ops'");
  });

  it("rejects bad input with a one-line error", async () => {
    const cli = cliIn(tempDir());
    const json = await cli("set", "k", "{nope", "--json-value");
    expect(json.code).toBe(2);
    expect(json.stderr).toMatch(
      /^error: invalid JSON value for key 'k': .*drop --json-value to store a string\n$/,
    );
    const ttl = await cli("set", "k", "v", "--ttl=-5s");
    expect(ttl.code).toBe(1);
    expect(ttl.stderr).toBe('error: invalid ttl \'-5s\': expected e.g. "500ms", "30s", "1h30m"\n');
    const ns = await cli("get", "k", "--namespace", "");
    expect(ns.code).toBe(1);
    expect(ns.stderr).toBe("error: invalid namespace: expected a non-empty string\n");
  });
});

describe("sloth-runner state lock/inspect/unlock", () => {
  it("runs the command with SLOTH_FENCING_TOKEN and exits with its code", async () => {
    const cli = cliIn(tempDir());
    const ok = await cli("lock", "deploy", "--", "sh", "-c", 'echo "token $SLOTH_FENCING_TOKEN"');
    expect(ok).toEqual({ code: 0, stdout: "token 1\n", stderr: "" });
    const failed = await cli(
      "lock",
      "deploy",
      "--",
      "sh",
      "-c",
      'echo "token $SLOTH_FENCING_TOKEN"; exit 7',
    );
    expect(failed).toEqual({ code: 7, stdout: "token 2\n", stderr: "" });
    const missing = await cli("lock", "deploy");
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      "error: missing command to run; put it after --, e.g. sloth-runner state lock deploy -- ./deploy.sh\n",
    );
  });

  it("fails with --no-wait while held, waits with --wait, and inspect shows the holder", async () => {
    const dir = tempDir();
    const cli = cliIn(dir);
    const go = path.join(dir, "go");
    // The holder keeps the lock until the test creates `go`: no timing guesses.
    const holder = spawnNode(CLI_BIN, [
      ...["--data-dir", dir, "state", "lock", "db", "--owner", "migrator", "--"],
      ...["sh", "-c", `echo holding; while [ ! -f '${go}' ]; do sleep 0.05; done`],
    ]);
    await holder.waitForOutput("holding");
    const info = await cli("inspect", "db");
    expect(info.stdout).toMatch(
      /^Lock 'db' in namespace 'default'\n {3}Holder: migrator\n {3}Fencing token: 1\n {3}Acquired: .+\n {3}Expires: .+\n$/,
    );
    expect(JSON.parse((await cli("inspect", "db", "--json")).stdout)).toMatchObject({
      holder: "migrator",
      fencingToken: 1,
    });
    expect(await cli("lock", "db", "--no-wait", "--", "true")).toEqual({
      code: 1,
      stdout: "",
      stderr: "error: cannot lock 'db': held by 'migrator'; wait for it with --wait DUR\n",
    });
    const waiter = spawnNode(CLI_BIN, [
      ...["--data-dir", dir, "state", "lock", "db", "--wait", "60s", "--"],
      ...["sh", "-c", "echo token $SLOTH_FENCING_TOKEN"],
    ]);
    fs.writeFileSync(go, "");
    expect(await holder.exited).toBe(0);
    expect(await waiter.exited).toBe(0);
    expect(waiter.stdout()).toBe("token 2\n");
    expect((await cli("inspect", "db")).stdout).toBe("Lock 'db' is free in namespace 'default'\n");
  });

  it("SIGTERMs the command and exits 75 when the lease is lost", async () => {
    const dir = tempDir();
    const cli = cliIn(dir);
    const holder = spawnNode(CLI_BIN, [
      "--data-dir",
      dir,
      "state",
      "lock",
      "job",
      // Renewed well within a stall of a loaded machine; lost soon after the forced unlock.
      "--ttl",
      "4s",
      "--",
      "sh",
      "-c",
      "trap 'echo got TERM; exit 143' TERM; echo started; while true; do sleep 0.1; done",
    ]);
    await holder.waitForOutput("started");
    expect(await cli("unlock", "job")).toMatchObject({ code: 2 });
    const broken = await cli("unlock", "job", "--force");
    expect(broken.stdout).toMatch(/^Lock 'job' released \(was held by '.+', fencing token 1\)\n$/);
    expect(await holder.exited).toBe(75);
    expect(holder.stdout()).toBe("started\ngot TERM\n");
    expect(holder.stderr()).toMatch(
      /^error: lost lock 'job' while 'sh' ran; the command was sent SIGTERM; /,
    );
  });
});

describe("sloth-runner state --master", () => {
  it("uses the master's store, not the local file, with the master's token", async () => {
    const m = await spawnMaster();
    const local = tempDir();
    const token = path.join(m.dataDir, "master", "token");
    const remote = (...args: string[]) =>
      runCli(["--data-dir", local, "state", ...args, "--master", m.address, "--token-file", token]);
    expect(await remote("set", "cfg", '{"replicas":3}', "--json-value", "--ttl", "1h")).toEqual({
      code: 0,
      stdout: "",
      stderr: "",
    });
    expect((await remote("get", "cfg")).stdout).toBe('{"replicas":3}\n');
    expect(await remote("set", "only-there", "x", "--namespace", "ops")).toMatchObject({ code: 0 });
    const listed = await remote("list", "--json", "--namespace", "ops");
    expect((JSON.parse(listed.stdout) as { key: string }[]).map((e) => e.key)).toEqual([
      "only-there",
    ]);
    // The local file knows nothing of it; the master keeps its own file.
    expect((await cliIn(local)("get", "cfg")).code).toBe(1);
    expect(fs.existsSync(path.join(m.dataDir, "master", "state.db"))).toBe(true);
    expect(await remote("get", "nope")).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "error: key 'nope' not found in namespace 'default'; run `sloth-runner state list --namespace default` to see its keys\n",
    });
    expect(await remote("delete", "cfg")).toMatchObject({ code: 0, stderr: "" });
  });

  it("exits 75 with the lost-lock message when the master goes away for longer than the lease", async () => {
    const m = await spawnMaster();
    const token = path.join(m.dataDir, "master", "token");
    const holder = spawnNode(CLI_BIN, [
      "--data-dir",
      tempDir(),
      "state",
      "lock",
      "job",
      "--ttl",
      "2s",
      "--master",
      m.address,
      "--token-file",
      token,
      "--",
      "sh",
      "-c",
      "trap 'echo got TERM; exit 143' TERM; echo started; while true; do sleep 0.1; done",
    ]);
    await holder.waitForOutput("started");
    m.proc.kill("SIGKILL");
    expect(await holder.exited).toBe(75);
    expect(holder.stdout()).toBe("started\ngot TERM\n");
    expect(holder.stderr()).toMatch(
      /error: lost lock 'job' while 'sh' ran; the command was sent SIGTERM; /,
    );
  }, 30_000);

  it("shares locks and fencing tokens through the master", async () => {
    const m = await spawnMaster();
    const token = path.join(m.dataDir, "master", "token");
    const flags = ["--master", m.address, "--token-file", token];
    const lock = (dir: string, ...cmd: string[]) =>
      runCli(["--data-dir", dir, "state", "lock", "deploy", ...flags, "--", ...cmd]);
    const show = ["sh", "-c", 'echo "token $SLOTH_FENCING_TOKEN"'];
    // Two different data dirs: only the master links them.
    expect(await lock(tempDir(), ...show)).toEqual({ code: 0, stdout: "token 1\n", stderr: "" });
    expect(await lock(tempDir(), ...show)).toEqual({ code: 0, stdout: "token 2\n", stderr: "" });
    const dir = tempDir();
    const go = path.join(dir, "go");
    const holder = spawnNode(CLI_BIN, [
      ...["--data-dir", dir, "state", "lock", "db", "--owner", "migrator", ...flags, "--"],
      ...["sh", "-c", `echo holding; while [ ! -f '${go}' ]; do sleep 0.05; done`],
    ]);
    await holder.waitForOutput("holding");
    // Flags go before `--`, after which everything belongs to the command.
    const other = (sub: string, ...args: string[]) =>
      runCli(["--data-dir", tempDir(), "state", sub, ...flags, ...args]);
    expect(JSON.parse((await other("inspect", "db", "--json")).stdout)).toMatchObject({
      holder: "migrator",
      fencingToken: 1,
    });
    expect(await other("lock", "db", "--no-wait", "--", "true")).toEqual({
      code: 1,
      stdout: "",
      stderr: "error: cannot lock 'db': held by 'migrator'; wait for it with --wait DUR\n",
    });
    fs.writeFileSync(go, "");
    expect(await holder.exited).toBe(0);
    expect((await other("inspect", "db")).stdout).toBe(
      "Lock 'db' is free in namespace 'default'\n",
    );
  });

  it("fails clearly on a wrong token and an unreachable master", async () => {
    const m = await spawnMaster();
    const dir = tempDir();
    const bad = path.join(dir, "bad-token");
    fs.writeFileSync(bad, "wrong-token-of-enough-length\n", { mode: 0o600 });
    const denied = await runCli([
      ...["--data-dir", dir, "state", "get", "k", "--master", m.address, "--token-file", bad],
    ]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(
      /^error: master at 127\.0\.0\.1:\d+ refused the request: invalid token; pass the cluster token/,
    );
    const down = await runCli([
      ...["--data-dir", dir, "state", "get", "k", "--master", "127.0.0.1:1", "--token-file", bad],
    ]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(
      /^error: cannot reach master at 127\.0\.0\.1:1: connection refused; /,
    );
  });
});

describe("the Lua state module in sloth-runner run", () => {
  const flow = (dir: string) => {
    const file = path.join(dir, "count.sloth");
    fs.writeFileSync(
      file,
      `workflow.define("count"):tasks({ task("bump"):command(function()
  local n = state.with_lock("count", function() return state.increment("runs") end, 30)
  local swapped = state.cas("last", state.get("last"), n)
  return swapped, "run " .. n
end) })
`,
    );
    return file;
  };

  it("uses <data dir>/state.db without --master, and the master's store with it", async () => {
    const dir = tempDir();
    const file = flow(dir);
    const run = (...args: string[]) => runCli(["--data-dir", dir, "run", file, ...args]);
    expect((await run()).code).toBe(0);
    expect((await run()).code).toBe(0);
    expect((await cliIn(dir)("get", "runs")).stdout).toBe("2\n");

    const m = await spawnMaster();
    const flags = ["--master", m.address, "--token-file", path.join(m.dataDir, "master", "token")];
    const remote = await run(...flags);
    expect(remote).toMatchObject({ code: 0 });
    const get = (key: string) => runCli(["--data-dir", tempDir(), "state", "get", key, ...flags]);
    expect((await get("runs")).stdout).toBe("1\n");
    expect((await get("last")).stdout).toBe("1\n");
    // The local file was not touched by the run against the master.
    expect((await cliIn(dir)("get", "runs")).stdout).toBe("2\n");
  });
});

describe("the Lua state module in delegated tasks", () => {
  it("gives a task run on an agent the same master store as the local tasks", async () => {
    const m = await spawnMaster();
    const tokenFile = path.join(m.dataDir, "master", "token");
    await spawnAgent({ name: "state-agent", master: m.address, tokenFile });
    const dir = tempDir();
    const file = path.join(dir, "shared.sloth");
    fs.writeFileSync(
      file,
      `local here = task("here"):command(function()
  return true, "here " .. state.increment("hits")
end)
local there = task("there"):depends_on({ here }):delegate_to("state-agent"):command(function()
  local n = state.with_lock("hits", function() return state.increment("hits") end, 30)
  return true, "there " .. n
end)
workflow.define("shared"):tasks({ here, there })
`,
    );
    const flags = ["--master", m.address, "--token-file", tokenFile];
    const r = await runCli(["--data-dir", dir, "run", file, "--no-history", ...flags], {
      timeoutMs: 90_000,
    });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const get = await runCli(["--data-dir", tempDir(), "state", "get", "hits", ...flags]);
    expect(get.stdout).toBe("2\n");
  });
});
