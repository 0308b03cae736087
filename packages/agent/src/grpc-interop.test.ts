import path from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterEach, describe, expect, it } from "vitest";
import { startTestAgent, TEST_TOKEN, type TestAgent } from "../test/helpers.js";

const PROTO_ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../../proto");

interface GrpcAgent extends grpc.Client {
  Health(
    req: object,
    cb: (e: grpc.ServiceError | null, res: Record<string, unknown>) => void,
  ): void;
  RunCommand(
    req: object,
    md: grpc.Metadata,
  ): grpc.ClientReadableStream<{ event: Record<string, unknown> }>;
}

function stockClient(address: string): GrpcAgent {
  const def = protoLoader.loadSync("sloth/agent/v1/agent.proto", {
    includeDirs: [PROTO_ROOT],
    enums: String,
    longs: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    sloth: {
      agent: { v1: { AgentService: new (a: string, c: grpc.ChannelCredentials) => GrpcAgent } };
    };
  };
  return new pkg.sloth.agent.v1.AgentService(address, grpc.credentials.createInsecure());
}

let t: TestAgent | undefined;
let client: GrpcAgent | undefined;
afterEach(async () => {
  client?.close();
  client = undefined;
  await t?.close();
  t = undefined;
});

describe("a stock gRPC client (@grpc/grpc-js) talks to the agent", () => {
  it("calls Health without a token", async () => {
    t = await startTestAgent();
    const c = stockClient(t.address);
    client = c;
    const health = await new Promise<Record<string, unknown>>((resolve, reject) =>
      c.Health({}, (e, res) => (e ? reject(e) : resolve(res))),
    );
    expect(health).toMatchObject({ name: "test-agent", runningCommands: 0 });
  });

  it("streams a command with the token and is refused without it", async () => {
    t = await startTestAgent();
    const c = stockClient(t.address);
    client = c;
    const collect = (md: grpc.Metadata) =>
      new Promise<Array<Record<string, unknown>>>((resolve, reject) => {
        const events: Array<Record<string, unknown>> = [];
        const stream = c.RunCommand({ spec: { command: "echo hi; echo oops >&2; exit 4" } }, md);
        stream.on("data", (res: { event: Record<string, unknown> }) => events.push(res.event));
        stream.on("error", reject);
        stream.on("end", () => resolve(events));
      });
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${TEST_TOKEN}`);
    const events = await collect(md);
    expect(events.map((e) => e.event)).toEqual(["started", "output", "output", "exit"]);
    const out = events
      .filter((e) => e.event === "output")
      .map((e) => e.output as { stream: string; data: Buffer });
    expect(out.map((o) => [o.stream, o.data.toString()])).toEqual([
      ["OUTPUT_STREAM_STDOUT", "hi\n"],
      ["OUTPUT_STREAM_STDERR", "oops\n"],
    ]);
    expect(events.at(-1)?.exit).toMatchObject({ exitCode: 4 });
    const err = await collect(new grpc.Metadata()).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.UNAUTHENTICATED);
  });
});
