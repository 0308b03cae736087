import fs from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { connect, masterClient } from "@sloth/client";
import {
  alive,
  cleanup,
  REPO_ROOT,
  spawnAgent,
  startTestMaster,
  tempDir,
  waitFor,
  writeToken,
} from "@sloth/testkit";
import { afterEach, describe, expect, it } from "vitest";

// RunOnAgent through the master: Connect binary calls over HTTP/2 (what the
// CLI and @sloth/client send) take the master's frame-forwarding path; a
// stock gRPC client goes through the Connect handler. Both must behave alike.
afterEach(cleanup);

interface Outcome {
  stdout: string;
  stderr: string;
  exit: number | undefined;
  error?: { code: string; message: string };
}

type GrpcEvent = {
  event?: {
    output?: { stream: string; data: Buffer };
    exit?: { exitCode: number };
  };
};
interface GrpcMaster extends grpc.Client {
  RunOnAgent(req: object, md: grpc.Metadata): grpc.ClientReadableStream<GrpcEvent>;
}

function grpcClient(address: string): GrpcMaster {
  const def = protoLoader.loadSync("sloth/master/v1/master.proto", {
    includeDirs: [path.join(REPO_ROOT, "proto")],
    enums: String,
    longs: Number,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    sloth: {
      master: { v1: { MasterService: new (a: string, c: grpc.ChannelCredentials) => GrpcMaster } };
    };
  };
  return new pkg.sloth.master.v1.MasterService(address, grpc.credentials.createInsecure());
}

const GRPC_CODES: Record<number, string> = {
  [grpc.status.NOT_FOUND]: "NotFound",
  [grpc.status.INVALID_ARGUMENT]: "InvalidArgument",
  [grpc.status.UNAVAILABLE]: "Unavailable",
  [grpc.status.UNAUTHENTICATED]: "Unauthenticated",
};

// Connect's code numbers are gRPC's.
const CONNECT_CODES: Record<number, string> = { ...GRPC_CODES, 4: "DeadlineExceeded" };

function viaGrpc(address: string, token: string, agentName: string, command: string) {
  const c = grpcClient(address);
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return new Promise<Outcome>((resolve) => {
    const out: Outcome = { stdout: "", stderr: "", exit: undefined };
    const s = c.RunOnAgent({ agentName, spec: { command } }, md);
    s.on("data", (r: GrpcEvent) => {
      const o = r.event?.output;
      if (o) out[o.stream === "OUTPUT_STREAM_STDERR" ? "stderr" : "stdout"] += o.data.toString();
      if (r.event?.exit) out.exit = r.event.exit.exitCode;
    });
    s.on("error", (e: grpc.ServiceError) => {
      // As grpc-js shows it: the servers encode grpc-message as the gRPC spec says.
      out.error = { code: GRPC_CODES[e.code] ?? String(e.code), message: e.details };
      c.close();
      resolve(out);
    });
    s.on("end", () => {
      c.close();
      resolve(out);
    });
  });
}

async function viaConnect(
  address: string,
  token: string,
  agentName: string,
  command: string,
  timeoutMs?: number,
): Promise<Outcome> {
  const conn = connect({ address, token });
  const out: Outcome = { stdout: "", stderr: "", exit: undefined };
  try {
    for await (const r of masterClient(conn).runOnAgent(
      { agentName, spec: { command } },
      { timeoutMs },
    )) {
      const e = r.event?.event;
      if (e?.case === "output")
        out[e.value.stream === 2 ? "stderr" : "stdout"] += Buffer.from(e.value.data).toString();
      if (e?.case === "exit") out.exit = e.value.exitCode;
    }
  } catch (e) {
    const err = e as { code: number; rawMessage: string };
    out.error = { code: CONNECT_CODES[err.code] ?? String(err.code), message: err.rawMessage };
  } finally {
    conn.close();
  }
  return out;
}

async function cluster() {
  const dir = tempDir("sloth-relay-");
  const { file, token } = writeToken(dir);
  const m = await startTestMaster({ token });
  const agent = await spawnAgent({ name: "a1", master: m.address, tokenFile: file });
  return { m, token, agent: { ...agent, tokenFile: file }, dir };
}

describe("RunOnAgent relay", () => {
  it("gives the same output, exit code and errors to a Connect and a gRPC caller", async () => {
    const { m, token } = await cluster();
    const big = "head -c 3000000 /dev/zero | tr '\\0' 'x'; echo; echo oops >&2; exit 3";
    const [fast, slow] = await Promise.all([
      viaConnect(m.address, token, "a1", big),
      viaGrpc(m.address, token, "a1", big),
    ]);
    expect(fast.error).toBeUndefined();
    expect(fast.exit).toBe(3);
    expect(fast.stdout).toBe(`${"x".repeat(3_000_000)}\n`);
    expect(fast.stderr).toBe("oops\n");
    expect(slow).toEqual(fast);

    for (const [agent, command] of [
      ["nobody", "true"],
      ["a1", ""],
    ]) {
      const [f, s] = await Promise.all([
        viaConnect(m.address, token, agent!, command!),
        viaGrpc(m.address, token, agent!, command!),
      ]);
      expect(f.error?.code).toMatch(/NotFound|InvalidArgument/);
      expect(s).toEqual(f);
    }
    const metrics = await fetch(`http://${m.address}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/sloth_master_rpc_total\{method="RunOnAgent",code="OK"\} 2/);
    expect(metrics).toMatch(/sloth_master_rpc_total\{method="RunOnAgent",code="NotFound"\} 2/);
    expect(metrics).toMatch(
      /sloth_master_rpc_total\{method="RunOnAgent",code="InvalidArgument"\} 2/,
    );
  });

  it("refuses a wrong token before anything runs", async () => {
    const { m, dir } = await cluster();
    const marker = path.join(dir, "ran");
    const r = await viaConnect(m.address, "x".repeat(64), "a1", `touch ${marker}`);
    expect(r.error?.code).toBe("Unauthenticated");
    expect(fs.existsSync(marker)).toBe(false);
  });

  it("stops the command on the agent at the caller's deadline", async () => {
    const { m, token, dir } = await cluster();
    const pidFile = path.join(dir, "pid");
    const t0 = Date.now();
    // Long enough for the command to start on a loaded machine, far short of its sleep.
    const r = await viaConnect(m.address, token, "a1", `echo $$ > ${pidFile}; exec sleep 30`, 3000);
    expect(r.error?.code).toBe("DeadlineExceeded");
    expect(Date.now() - t0).toBeLessThan(10_000);
    await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").endsWith("\n"), {
      timeoutMs: 10_000,
      what: "the command's pid",
    });
    const pid = Number(fs.readFileSync(pidFile, "utf8"));
    await waitFor(() => !alive(pid), { timeoutMs: 10_000, what: "the sleep to be killed" });
  });

  it("names the agent when it dies mid-run", async () => {
    const { m, token, agent, dir } = await cluster();
    const pidFile = path.join(dir, "pid");
    const running = viaConnect(m.address, token, "a1", `echo $$ > ${pidFile}; exec sleep 30`);
    await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").endsWith("\n"), {
      timeoutMs: 10_000,
      what: "the command to start",
    });
    agent.proc.kill("SIGKILL");
    const r = await running;
    expect(r.error?.code).toBe("Unavailable");
    expect(r.error?.message).toMatch(/cannot reach agent 'a1' at 127\.0\.0\.1:\d+/);
    // The orphaned command is the agent's to clean up at its next start.
    const orphan = Number(fs.readFileSync(pidFile, "utf8"));
    expect(alive(orphan)).toBe(true);
    try {
      await spawnAgent({
        name: "a1",
        master: m.address,
        tokenFile: agent.tokenFile,
        dataDir: agent.dataDir,
      });
      await waitFor(() => !alive(orphan), { timeoutMs: 10_000, what: "the orphan to be killed" });
    } finally {
      try {
        process.kill(-orphan, "SIGKILL");
      } catch {
        // Gone, as it should be.
      }
    }
  });

  it("at its next start, an agent killed mid-command kills that command but spares what finished commands left running", async () => {
    const { m, token, agent, dir } = await cluster();
    const daemonPid = path.join(dir, "daemon.pid");
    // A finished command that left a daemon behind on purpose.
    const first = await viaConnect(
      m.address,
      token,
      "a1",
      `setsid sleep 60 >/dev/null 2>&1 & echo $! > ${daemonPid}`,
    );
    expect(first.exit).toBe(0);
    const pidFile = path.join(dir, "pid");
    const running = viaConnect(m.address, token, "a1", `echo $$ > ${pidFile}; sleep 30 & wait`);
    await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").endsWith("\n"), {
      timeoutMs: 10_000,
      what: "the command to start",
    });
    // Past the ledger's write delay.
    await new Promise((r) => setTimeout(r, 300));
    agent.proc.kill("SIGKILL");
    await running;
    const orphan = Number(fs.readFileSync(pidFile, "utf8"));
    const daemon = Number(fs.readFileSync(daemonPid, "utf8"));
    try {
      const again = await spawnAgent({
        name: "a1",
        master: m.address,
        tokenFile: agent.tokenFile,
        dataDir: agent.dataDir,
      });
      await waitFor(() => !alive(orphan), { timeoutMs: 10_000, what: "the orphan to be killed" });
      expect(again.proc.stderr() + again.proc.stdout()).toMatch(
        /killed \d+ process\(es\) left running/,
      );
      expect(alive(daemon)).toBe(true);
      // A ledger that cannot be read is kept aside, with a warning.
      const ledger = path.join(agent.dataDir, "agents", "a1", "jobs.json");
      await again.proc.kill("SIGKILL");
      await again.proc.exited;
      fs.writeFileSync(ledger, '{"agent":"1:garbage","jobs":["x');
      const third = await spawnAgent({
        name: "a1",
        master: m.address,
        tokenFile: agent.tokenFile,
        dataDir: agent.dataDir,
      });
      expect(third.proc.stderr() + third.proc.stdout()).toMatch(
        /cannot read the list of jobs an earlier run of this agent had running/,
      );
      expect(fs.existsSync(`${ledger}.unreadable`)).toBe(true);
    } finally {
      for (const p of [orphan, daemon]) {
        try {
          process.kill(p, "SIGKILL");
        } catch {
          // Gone.
        }
      }
    }
  });
});
