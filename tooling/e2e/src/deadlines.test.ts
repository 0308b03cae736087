// A deadline the server enforces (the caller sets `grpc-timeout` or
// `connect-timeout-ms` and waits, as a proxy or a raw client does) ends the
// call with DEADLINE_EXCEEDED on every protocol, through the master and
// directly on the agent, and kills the remote command.
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http2 from "node:http2";
import path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { RunCommandRequestSchema, RunOnAgentRequestSchema } from "@sloth/proto";
import { cleanup, spawnAgent, spawnMaster, waitFor } from "@sloth/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

afterAll(cleanup);

let master: Awaited<ReturnType<typeof spawnMaster>>;
let agentAddress = "";
let token = "";
beforeAll(async () => {
  master = await spawnMaster();
  const tokenFile = path.join(master.dataDir, "master", "token");
  token = fs.readFileSync(tokenFile, "utf8").trim();
  const agent = await spawnAgent({ name: "slow", master: master.address, tokenFile });
  agentAddress = agent.address;
}, 60_000);

function envelope(body: Uint8Array): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b.writeUInt32BE(body.length, 1);
  Buffer.from(body).copy(b, 5);
  return b;
}

/** Sends one streaming request and reads everything back: body text, headers and trailers. */
function call(
  address: string,
  rpc: string,
  headers: Record<string, string>,
  body: Buffer,
): Promise<{ text: string; meta: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${address}`);
    session.on("error", reject);
    const req = session.request({
      ":method": "POST",
      ":path": rpc,
      authorization: `Bearer ${token}`,
      ...headers,
    });
    const meta: Record<string, unknown> = {};
    let text = "";
    req.on("response", (h) => Object.assign(meta, h));
    req.on("trailers", (t) => Object.assign(meta, t));
    req.on("data", (d: Buffer) => {
      text += d.toString("latin1");
    });
    req.on("end", () => {
      session.close();
      resolve({ text, meta });
    });
    req.on("error", reject);
    req.end(body);
  });
}

const sleeping = (marker: string) => spawnSync("pgrep", ["-f", `^sleep ${marker}$`]).status === 0;

describe("a deadline enforced by the server", () => {
  const cases = [
    { via: "master", protocol: "gRPC" },
    { via: "master", protocol: "Connect JSON" },
    { via: "master", protocol: "Connect binary" },
    { via: "agent", protocol: "gRPC" },
    { via: "agent", protocol: "Connect JSON" },
    { via: "agent", protocol: "Connect binary" },
  ] as const;
  it.each(cases)("ends with DEADLINE_EXCEEDED: $via, $protocol", async ({ via, protocol }) => {
    const marker = `30.${crypto.randomInt(1e6)}`;
    const command = `sleep ${marker}`;
    const rpc =
      via === "master"
        ? "/sloth.master.v1.MasterService/RunOnAgent"
        : "/sloth.agent.v1.AgentService/RunCommand";
    const address = via === "master" ? master.address : agentAddress;
    const json =
      via === "master" ? { agentName: "slow", spec: { command } } : { spec: { command } };
    const binary =
      via === "master"
        ? toBinary(RunOnAgentRequestSchema, create(RunOnAgentRequestSchema, json))
        : toBinary(RunCommandRequestSchema, create(RunCommandRequestSchema, json));
    const started = Date.now();
    const r =
      protocol === "gRPC"
        ? await call(
            address,
            rpc,
            { "content-type": "application/grpc", te: "trailers", "grpc-timeout": "1S" },
            envelope(binary),
          )
        : protocol === "Connect JSON"
          ? await call(
              address,
              rpc,
              { "content-type": "application/connect+json", "connect-timeout-ms": "1000" },
              envelope(Buffer.from(JSON.stringify(json))),
            )
          : await call(
              address,
              rpc,
              { "content-type": "application/connect+proto", "connect-timeout-ms": "1000" },
              envelope(binary),
            );
    expect(Date.now() - started).toBeLessThan(10_000);
    if (protocol === "gRPC") expect(r.meta["grpc-status"]).toBe("4");
    else expect(r.text).toMatch(/"code":"deadline_exceeded"/);
    await waitFor(() => !sleeping(marker), { timeoutMs: 5000, what: "the remote sleep to die" });
  });
});
