import fs from "node:fs";
import http2 from "node:http2";
import path from "node:path";
import zlib from "node:zlib";
import { cleanup, spawnAgent, spawnMaster } from "@sloth/testkit";
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
