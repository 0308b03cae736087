import crypto from "node:crypto";
import http2 from "node:http2";
import zlib from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { connect, masterClient } from "@sloth/client";
import { HeartbeatRequestSchema, HeartbeatResponseSchema, MasterService } from "@sloth/proto";
import { cleanup, startTestMaster, type TestMaster } from "@sloth/testkit";
import { afterEach, describe, expect, it } from "vitest";

afterEach(cleanup);

const PATH = "/sloth.master.v1.MasterService/Heartbeat";

async function registered(m: TestMaster, name: string): Promise<Uint8Array> {
  const secret = crypto.randomBytes(32);
  const conn = connect({ address: m.address, token: m.token });
  try {
    await masterClient(conn).registerAgent({
      name,
      reportAddress: "127.0.0.1:1",
      port: 1,
      identitySecret: secret,
      version: "t",
    });
  } finally {
    conn.close();
  }
  return secret;
}

interface Raw {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One request over a fresh HTTP/2 connection, as any client would send it. */
async function raw(m: TestMaster, headers: http2.OutgoingHttpHeaders, body: Buffer): Promise<Raw> {
  const session = http2.connect(`http://${m.address}`);
  session.on("error", () => undefined);
  try {
    return await new Promise<Raw>((resolve, reject) => {
      const req = session.request({ ":method": "POST", ":path": PATH, ...headers });
      let head: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      req.once("response", (h) => {
        head = h;
      });
      req.on("data", (c: Buffer) => chunks.push(c));
      req.once("end", () =>
        resolve({ status: Number(head[":status"]), headers: head, body: Buffer.concat(chunks) }),
      );
      req.once("error", reject);
      req.end(body);
    });
  } finally {
    session.close();
  }
}

const binary = (name: string, secret: Uint8Array) =>
  Buffer.from(
    toBinary(
      HeartbeatRequestSchema,
      create(HeartbeatRequestSchema, { name, identitySecret: secret }),
    ),
  );

describe("Heartbeat, answered by hand for Connect binary calls", () => {
  it("answers @sloth/client like the Connect handler: the interval, NOT_FOUND for strangers", async () => {
    const m = await startTestMaster({ heartbeatIntervalMs: 4321, agentTtlMs: 60_000 });
    const secret = await registered(m, "a");
    const conn = connect({ address: m.address, token: m.token });
    try {
      const c = masterClient(conn);
      const ok = await c.heartbeat({ name: "a", identitySecret: secret, runningCommands: 3 });
      expect(ok.heartbeatIntervalMs).toBe(4321n);
      expect(m.master.registry.get("a")?.runningCommands).toBe(3);
      for (const req of [
        { name: "ghost", identitySecret: secret },
        { name: "a", identitySecret: crypto.randomBytes(32) },
      ]) {
        const e = await c.heartbeat(req).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(ConnectError);
        expect((e as ConnectError).code).toBe(Code.NotFound);
        expect((e as ConnectError).rawMessage).toBe(`agent '${req.name}' is not registered`);
      }
      // A stopping agent is marked inactive at once.
      await c.heartbeat({ name: "a", identitySecret: secret, stopping: true });
      expect(m.master.registry.get("a")?.status).toBe("inactive");
      expect(m.master.registry.get("a")?.statusReason).toBe("the agent stopped");
    } finally {
      conn.close();
    }
    const metrics = await (await fetch(`http://${m.address}/metrics`)).text();
    expect(metrics).toMatch(/sloth_master_rpc_total\{method="Heartbeat",code="OK"\} 2/);
    expect(metrics).toMatch(/sloth_master_rpc_total\{method="Heartbeat",code="NotFound"\} 2/);
    expect(metrics).toMatch(/sloth_master_rpc_duration_seconds_count\{method="Heartbeat"\} 4/);
  });

  it("gives the same answers over gRPC, Connect JSON and gzip, which the Connect handler serves", async () => {
    const m = await startTestMaster({ heartbeatIntervalMs: 4321, agentTtlMs: 60_000 });
    const secret = await registered(m, "a");
    const auth = { authorization: `Bearer ${m.token}` };
    const transports = [
      createGrpcTransport({ baseUrl: `http://${m.address}` }),
      createConnectTransport({
        baseUrl: `http://${m.address}`,
        httpVersion: "2",
        useBinaryFormat: false,
      }),
      createConnectTransport({
        baseUrl: `http://${m.address}`,
        httpVersion: "1.1",
        useBinaryFormat: true,
      }),
    ];
    for (const transport of transports) {
      const c = createClient(MasterService, transport);
      const ok = await c.heartbeat({ name: "a", identitySecret: secret }, { headers: auth });
      expect(ok.heartbeatIntervalMs).toBe(4321n);
      const e = await c
        .heartbeat({ name: "ghost", identitySecret: secret }, { headers: auth })
        .catch((x: unknown) => x);
      expect((e as ConnectError).code).toBe(Code.NotFound);
      expect((e as ConnectError).rawMessage).toBe("agent 'ghost' is not registered");
    }
    const gzipped = await raw(
      m,
      { "content-type": "application/proto", "content-encoding": "gzip", ...auth },
      zlib.gzipSync(binary("a", secret)),
    );
    expect(gzipped.status).toBe(200);
    expect(fromBinary(HeartbeatResponseSchema, gzipped.body).heartbeatIntervalMs).toBe(4321n);
  });

  it("refuses what the Connect handler refuses: no token, a bad token, a bad message", async () => {
    const m = await startTestMaster();
    const secret = await registered(m, "a");
    const proto = { "content-type": "application/proto", "connect-protocol-version": "1" };
    const auth = { authorization: `Bearer ${m.token}` };
    const json = (r: Raw) =>
      JSON.parse(r.body.toString("utf8")) as { code: string; message: string };

    const fine = await raw(m, { ...proto, ...auth }, binary("a", secret));
    expect(fine.status).toBe(200);
    expect(fine.headers["content-type"]).toBe("application/proto");
    expect(Number(fine.headers["content-length"])).toBe(fine.body.length);

    const noToken = await raw(m, proto, binary("a", secret));
    expect(noToken.status).toBe(401);
    expect(json(noToken).code).toBe("unauthenticated");
    const badToken = await raw(m, { ...proto, authorization: "Bearer nope" }, binary("a", secret));
    expect(badToken.status).toBe(401);

    const garbage = await raw(m, { ...proto, ...auth }, Buffer.from([0xff, 0xff, 0xff]));
    expect(garbage.status).toBe(400);
    expect(garbage.headers["content-type"]).toBe("application/json");
    expect(json(garbage)).toMatchObject({ code: "invalid_argument" });
    expect(json(garbage).message).toMatch(/^cannot read the request: /);

    // Big, but within the Connect handler's limit for callers with the token: answered the same.
    const big = await raw(m, { ...proto, ...auth }, binary("x".repeat(100_000), secret));
    expect(big.status).toBe(404);
    expect(json(big).code).toBe("not_found");

    const unknown = await raw(m, { ...proto, ...auth }, binary("ghost", secret));
    expect(unknown.status).toBe(404);
    expect(json(unknown)).toEqual({
      code: "not_found",
      message: "agent 'ghost' is not registered",
    });
    // As with the Connect handler's interceptor, a request that was never
    // read whole and decoded is not counted.
    const metrics = await (await fetch(`http://${m.address}/metrics`)).text();
    expect(metrics).toMatch(/sloth_master_rpc_total\{method="Heartbeat",code="OK"\} 1\n/);
    expect(metrics).toMatch(/sloth_master_rpc_total\{method="Heartbeat",code="NotFound"\} 2\n/);
    expect(metrics).not.toMatch(/method="Heartbeat",code="InvalidArgument"/);

    expect(m.master.registry.get("a")?.status).not.toBe("inactive");
  });
});
