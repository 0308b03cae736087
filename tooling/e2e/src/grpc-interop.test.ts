import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { cleanup, FAST_TIMERS, REPO_ROOT, startTestMaster } from "@sloth/testkit";
import { afterEach, describe, expect, it } from "vitest";

afterEach(cleanup);

interface GrpcMaster extends grpc.Client {
  Health(
    req: object,
    cb: (e: grpc.ServiceError | null, res: Record<string, unknown>) => void,
  ): void;
  ListAgents(
    req: object,
    md: grpc.Metadata,
    cb: (e: grpc.ServiceError | null, res: { agents: Array<Record<string, unknown>> }) => void,
  ): void;
  RegisterAgent(
    req: object,
    md: grpc.Metadata,
    cb: (e: grpc.ServiceError | null, res: Record<string, unknown>) => void,
  ): void;
}

function stockClient(address: string): GrpcMaster {
  const def = protoLoader.loadSync("sloth/master/v1/master.proto", {
    includeDirs: [path.join(REPO_ROOT, "proto")],
    keepCase: false,
    enums: String,
    longs: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    sloth: {
      master: { v1: { MasterService: new (a: string, c: grpc.ChannelCredentials) => GrpcMaster } };
    };
  };
  return new pkg.sloth.master.v1.MasterService(address, grpc.credentials.createInsecure());
}

function call<T>(fn: (cb: (e: grpc.ServiceError | null, res: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((e, res) => (e ? reject(e) : resolve(res))));
}

describe("a stock gRPC client (@grpc/grpc-js) talks to the master over HTTP/2", () => {
  it("calls Health without a token and ListAgents with one", async () => {
    const m = await startTestMaster();
    const client = stockClient(m.address);
    try {
      const health = await call<Record<string, unknown>>((cb) => client.Health({}, cb));
      expect(health).toMatchObject({ agentsActive: 0, runsInFlight: 0 });
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${m.token}`);
      const list = await call<{ agents: unknown[] }>((cb) => client.ListAgents({}, md, cb));
      expect(list.agents).toEqual([]);
    } finally {
      client.close();
    }
  });

  it("gets UNAUTHENTICATED without a token or with a wrong one", async () => {
    const m = await startTestMaster();
    const client = stockClient(m.address);
    try {
      const none = await call((cb) => client.ListAgents({}, new grpc.Metadata(), cb)).catch(
        (e: grpc.ServiceError) => e,
      );
      expect((none as grpc.ServiceError).code).toBe(grpc.status.UNAUTHENTICATED);
      const md = new grpc.Metadata();
      md.set("authorization", "Bearer not-the-token");
      const wrong = await call((cb) => client.ListAgents({}, md, cb)).catch(
        (e: grpc.ServiceError) => e,
      );
      expect((wrong as grpc.ServiceError).code).toBe(grpc.status.UNAUTHENTICATED);
      expect((wrong as grpc.ServiceError).details).toBe("invalid token");
    } finally {
      client.close();
    }
  });

  it("registers an agent whose address does not answer: listed unreachable with the reason", async () => {
    const m = await startTestMaster();
    const client = stockClient(m.address);
    try {
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${m.token}`);
      const res = await call<Record<string, unknown>>((cb) =>
        client.RegisterAgent(
          {
            name: "grpc-agent",
            reportAddress: "127.0.0.1:1",
            port: 1,
            version: "x",
            identitySecret: Buffer.alloc(32, 7),
          },
          md,
          cb,
        ),
      );
      expect(res.heartbeatIntervalMs).toBe(String(FAST_TIMERS.heartbeatIntervalMs));
      const list = await call<{ agents: Array<Record<string, unknown>> }>((cb) =>
        client.ListAgents({}, md, cb),
      );
      expect(list.agents[0]).toMatchObject({
        name: "grpc-agent",
        status: "AGENT_STATUS_UNREACHABLE",
      });
      expect(String(list.agents[0]?.statusReason)).toMatch(/cannot reach 127\.0\.0\.1:1/);
    } finally {
      client.close();
    }
  });
});
