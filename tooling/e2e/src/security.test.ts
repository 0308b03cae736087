import fs from "node:fs";
import http2 from "node:http2";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { cleanup, onCleanup, runCli, spawnAgent, spawnMaster, tempDir } from "@sloth/testkit";
import { afterEach, beforeAll, describe, expect, it } from "vitest";

afterEach(cleanup);

// 256 MiB of zeros, gzip -9: about 250 KB on the wire.
let bomb: Buffer;
beforeAll(() => {
  bomb = zlib.gzipSync(Buffer.alloc(256 * 1024 * 1024), { level: 9 });
}, 60_000);

/** Peak resident memory of a process, in MiB. */
function peakMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1]) / 1024;
}

/** POSTs `body` over h2c; the HTTP status and the response text. */
function post(
  address: string,
  rpcPath: string,
  headers: Record<string, string>,
  body: Buffer,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${address}`);
    session.on("error", reject);
    const req = session.request({ ":method": "POST", ":path": rpcPath, ...headers });
    let status = 0;
    let text = "";
    req.on("response", (h) => {
      status = Number(h[":status"]);
    });
    req.on("data", (d: Buffer) => {
      text += d.toString();
    });
    req.on("end", () => {
      session.close();
      resolve({ status, text });
    });
    req.on("error", (e) => {
      session.close();
      // A refused body may reset the stream: that is an answer too.
      resolve({ status: status || 0, text: String(e) });
    });
    req.end(body);
  });
}

describe("callers without the token", () => {
  it("cannot make the master or an agent inflate a compressed request", async () => {
    const master = await spawnMaster();
    const agent = await spawnAgent({
      name: "a1",
      master: master.address,
      tokenFile: path.join(master.dataDir, "master", "token"),
    });
    const masterPid = master.proc.child.pid as number;
    const agentPid = agent.proc.child.pid as number;
    const before = { master: peakMiB(masterPid), agent: peakMiB(agentPid) };
    const gzipped = {
      "content-type": "application/proto",
      "content-encoding": "gzip",
      "connect-protocol-version": "1",
    };
    for (const [address, rpc] of [
      [master.address, "/sloth.master.v1.MasterService/ListAgents"],
      [master.address, "/sloth.master.v1.MasterService/Health"],
      [agent.address, "/sloth.agent.v1.AgentService/RunCommand"],
      [agent.address, "/sloth.agent.v1.AgentService/Health"],
    ] as const) {
      const r = await post(address, rpc, gzipped, bomb);
      expect(r.status === 0 || r.status >= 400, `${rpc}: ${r.status} ${r.text}`).toBe(true);
    }
    // gRPC: one compressed envelope.
    const envelope = Buffer.alloc(5 + bomb.length);
    envelope[0] = 1;
    envelope.writeUInt32BE(bomb.length, 1);
    bomb.copy(envelope, 5);
    const grpc = await post(
      master.address,
      "/sloth.master.v1.MasterService/Health",
      { "content-type": "application/grpc", "grpc-encoding": "gzip", te: "trailers" },
      envelope,
    );
    expect(grpc.text).not.toMatch(/"status"/);
    // Neither process took in the 256 MiB.
    expect(peakMiB(masterPid) - before.master).toBeLessThan(64);
    expect(peakMiB(agentPid) - before.agent).toBeLessThan(64);
    // Both still serve.
    const health = await post(
      master.address,
      "/sloth.master.v1.MasterService/Health",
      { "content-type": "application/json", "connect-protocol-version": "1" },
      Buffer.from("{}"),
    );
    expect(health.status).toBe(200);
  }, 60_000);
});

describe("the cluster token", () => {
  it("never reaches what an agent runs for a delegated task, however the agent got it", async () => {
    const master = await spawnMaster();
    const tokenFile = path.join(master.dataDir, "master", "token");
    const token = fs.readFileSync(tokenFile, "utf8").trim();
    // From the environment, as agentd's README shows; and from a file while
    // the variable is also set.
    await spawnAgent({
      name: "env-token",
      master: master.address,
      tokenFile: "",
      env: { SLOTH_RUNNER_TOKEN: token },
    });
    await spawnAgent({
      name: "file-token",
      master: master.address,
      tokenFile,
      env: { SLOTH_RUNNER_TOKEN: token },
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-token-leak-"));
    onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
    const flow = path.join(dir, "flow.sloth");
    fs.writeFileSync(
      flow,
      `
local function probe(name, agent)
  return task(name):delegate_to(agent):command(function()
    log.info("env.get: " .. tostring(env.get("SLOTH_RUNNER_TOKEN")))
    log.info("exec.run: " .. exec.run("echo \\"[$SLOTH_RUNNER_TOKEN]\\"").stdout)
    return true, "ok"
  end):build()
end
local shell_env = task("shell_env"):delegate_to("env-token"):command("env | grep -c SLOTH_RUNNER_TOKEN || true"):build()
workflow.define("w"):tasks({ probe("on_env", "env-token"), probe("on_file", "file-token"), shell_env })
`,
    );
    const r = await runCli(["--data-dir", master.dataDir, "run", flow, "--no-history"], {
      env: { SLOTH_RUNNER_MASTER_ADDR: master.address },
      cwd: dir,
    });
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout + r.stderr;
    expect(out).not.toContain(token);
    expect(out).toMatch(/on_env \| INFO env\.get: nil/);
    expect(out).toMatch(/on_file \| INFO exec\.run: \[\]/);
    expect(out).toMatch(/shell_env \| 0/);
  }, 90_000);

  it("is refused by an agent when shorter than 16 characters", async () => {
    const r = await runCli(
      ["agent", "start", "--name", "weak", "--port", "0", "--data-dir", tempDir()],
      {
        env: { SLOTH_RUNNER_TOKEN: "a", SLOTH_RUNNER_MASTER_ADDR: "127.0.0.1:1" },
      },
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(
        /^error: cannot create agent: the cluster token is too short \(1 characters; at least 16\)/,
      ),
    ]);
  });

  it("kept in a file other users can read: master, agent and CLI say so, and how to fix it", async () => {
    const dir = tempDir();
    const file = path.join(dir, "token");
    const token = "t".repeat(32);
    fs.writeFileSync(file, `${token}\n`, { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    const warning = `token file ${file} can be read or changed by other users (mode 0644): run chmod 600 ${file}`;
    const master = await spawnMaster({ args: ["--token-file", file] });
    expect(master.proc.stderr()).toContain(warning);
    const agent = await spawnAgent({ name: "loose", master: master.address, tokenFile: file });
    expect(agent.proc.stdout() + agent.proc.stderr()).toContain(warning);
    const list = await runCli([
      "agent",
      "list",
      "--master",
      master.address,
      "--token-file",
      file,
      "--data-dir",
      tempDir(),
    ]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stderr.trim().split("\n")).toEqual([`warning: ${warning}`]);
    expect(list.stdout).toContain("loose");
    for (const out of [master.proc.stderr(), list.stderr, list.stdout])
      expect(out).not.toContain(token);
  });
});

describe("changes coming back from an agent", () => {
  it("are refused past the workspace limit, leaving no spool file behind", async () => {
    const master = await spawnMaster();
    await spawnAgent({
      name: "big",
      master: master.address,
      tokenFile: path.join(master.dataDir, "master", "token"),
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-changes-limit-"));
    onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.writeFileSync(path.join(dir, "small.txt"), "small\n");
    const flow = path.join(dir, "flow.sloth");
    fs.writeFileSync(
      flow,
      `workflow.define("w"):tasks({ task("big"):delegate_to("big"):command("head -c 3000000 /dev/zero > big.bin"):build() })\n`,
    );
    const spools = () => fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith("sloth-changes-"));
    const before = spools();
    const r = await runCli(
      ["--data-dir", master.dataDir, "run", flow, "--no-history", "--workspace-limit", "1M"],
      { env: { SLOTH_RUNNER_MASTER_ADDR: master.address }, cwd: dir },
    );
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(
      /cannot take the task's changes back: they exceed the limit of 1048576 bytes/,
    );
    expect(fs.existsSync(path.join(dir, "big.bin"))).toBe(false);
    expect(spools().filter((n) => !before.includes(n))).toEqual([]);
  }, 60_000);
});
