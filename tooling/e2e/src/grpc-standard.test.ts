// The standard gRPC services, as stock tools use them: a health probe without
// the token, and grpcurl's way of calling a server it has no .proto files
// for (list the services by reflection, fetch the files defining them, build
// the methods from those, call one). Spoken with @grpc/grpc-js to a master
// and an agent started as their CLIs start them.
import http2 from "node:http2";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import {
  cleanup,
  REPO_ROOT,
  spawnAgent,
  spawnMaster,
  tempDir,
  waitFor,
  writeToken,
} from "@sloth/testkit";
import { afterEach, describe, expect, it } from "vitest";

afterEach(cleanup);

type Callback<T> = (e: grpc.ServiceError | null, res: T) => void;
type Ctor<T> = new (address: string, credentials: grpc.ChannelCredentials) => T;

function load(file: string): grpc.GrpcObject {
  const def = protoLoader.loadSync(file, {
    includeDirs: [path.join(REPO_ROOT, "proto")],
    enums: String,
    longs: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(def);
}

interface HealthClient extends grpc.Client {
  Check(req: { service: string }, cb: Callback<{ status: string }>): void;
  List(req: object, cb: Callback<{ statuses: Record<string, { status: string }> }>): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
}

function healthClient(address: string): HealthClient {
  const pkg = load("grpc/health/v1/health.proto") as unknown as {
    grpc: { health: { v1: { Health: Ctor<HealthClient> } } };
  };
  return new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
}

interface ReflectionResponse {
  messageResponse: string;
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

interface ReflectionClient extends grpc.Client {
  ServerReflectionInfo(md: grpc.Metadata): grpc.ClientDuplexStream<object, ReflectionResponse>;
}

/** One reflection stream; `ask` sends a request and resolves with its answer. */
function reflect(address: string, version: "v1" | "v1alpha", md: grpc.Metadata) {
  const pkg = load(`grpc/reflection/${version}/reflection.proto`) as unknown as {
    grpc: { reflection: Record<string, { ServerReflection: Ctor<ReflectionClient> }> };
  };
  const Client = pkg.grpc.reflection[version]!.ServerReflection;
  const client = new Client(address, grpc.credentials.createInsecure());
  const stream = client.ServerReflectionInfo(md);
  const waiting: { resolve: (r: ReflectionResponse) => void; reject: (e: Error) => void }[] = [];
  stream.on("data", (r: ReflectionResponse) => waiting.shift()?.resolve(r));
  stream.on("error", (e: Error) => {
    for (const w of waiting.splice(0)) w.reject(e);
  });
  return {
    ask(req: object): Promise<ReflectionResponse> {
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        stream.write(req);
      });
    },
    close() {
      stream.end();
      client.close();
    },
  };
}

/** What grpcurl does: every service, the files defining it, its methods built from those. */
async function discover(address: string, version: "v1" | "v1alpha", md: grpc.Metadata) {
  const r = reflect(address, version, md);
  try {
    const list = await r.ask({ listServices: "" });
    const services = list.listServicesResponse!.service.map((s) => s.name);
    const files = new Map<string, Buffer>();
    for (const name of services) {
      const f = await r.ask({ fileContainingSymbol: name });
      expect(f.errorResponse).toBeUndefined();
      for (const b of f.fileDescriptorResponse!.fileDescriptorProto)
        files.set(b.toString("hex"), b);
    }
    // A FileDescriptorSet: field 1, length-delimited, once per file.
    const parts: Buffer[] = [];
    for (const b of files.values()) {
      const len: number[] = [];
      let n = b.length;
      while (n > 0x7f) {
        len.push((n & 0x7f) | 0x80);
        n >>>= 7;
      }
      len.push(n);
      parts.push(Buffer.from([0x0a, ...len]), b);
    }
    const def = protoLoader.loadFileDescriptorSetFromBuffer(Buffer.concat(parts), {
      enums: String,
      longs: String,
      defaults: true,
    });
    const missing = await r.ask({ fileContainingSymbol: "no.such.Service" });
    const badFile = await r.ask({ fileByFilename: "no/such.proto" });
    return { services, pkg: grpc.loadPackageDefinition(def), missing, badFile };
  } finally {
    r.close();
  }
}

/** The master and agent services as built from the reflected files. */
interface DynMaster extends grpc.Client {
  ListAgents(req: object, md: grpc.Metadata, cb: Callback<{ agents: { name: string }[] }>): void;
}
interface DynAgent extends grpc.Client {
  RunCommand(req: object, md: grpc.Metadata): grpc.ClientReadableStream<Record<string, unknown>>;
}

function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}

const call = <T>(fn: (cb: Callback<T>) => void) =>
  new Promise<T>((resolve, reject) => fn((e, res) => (e ? reject(e) : resolve(res))));

describe("grpc.health.v1 and server reflection on a master and an agent", () => {
  it("answers health probes without the token, and Watch sees the master stop", async () => {
    const dir = tempDir();
    const { file } = writeToken(dir);
    const master = await spawnMaster({ args: ["--token-file", file] });
    const health = healthClient(master.address);
    try {
      expect(await call<{ status: string }>((cb) => health.Check({ service: "" }, cb))).toEqual({
        status: "SERVING",
      });
      const named = await call<{ status: string }>((cb) =>
        health.Check({ service: "sloth.master.v1.MasterService" }, cb),
      );
      expect(named.status).toBe("SERVING");
      const unknown = await call((cb) => health.Check({ service: "no.Such" }, cb)).catch(
        (e: grpc.ServiceError) => e,
      );
      expect((unknown as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
      const all = await call<{ statuses: Record<string, { status: string }> }>((cb) =>
        health.List({}, cb),
      );
      expect(Object.keys(all.statuses).sort()).toEqual([
        "",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "sloth.master.v1.MasterService",
        "sloth.state.v1.StateService",
      ]);

      const seen: string[] = [];
      const watch = health.Watch({ service: "" });
      const ended = new Promise<grpc.StatusObject>((resolve) => watch.on("status", resolve));
      watch.on("data", (r: { status: string }) => seen.push(r.status));
      watch.on("error", () => {});
      await waitFor(() => seen.length === 1);
      master.proc.kill("SIGTERM");
      const status = await ended;
      expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
      expect(status.code).toBe(grpc.status.OK);
      expect(await master.proc.exited).toBe(0);
    } finally {
      health.close();
    }
  });

  it("bounds the streams one connection may hold open, on the master and on agents", async () => {
    const dir = tempDir();
    const { file } = writeToken(dir);
    const master = await spawnMaster({ args: ["--token-file", file] });
    const agent = await spawnAgent({ name: "streams-1", master: master.address, tokenFile: file });
    for (const address of [master.address, agent.address]) {
      const session = http2.connect(`http://${address}`);
      try {
        const settings = await new Promise<http2.Settings>((resolve, reject) => {
          session.once("remoteSettings", resolve);
          session.once("error", reject);
        });
        expect(settings.maxConcurrentStreams).toBe(1000);
      } finally {
        session.close();
      }
    }
  });

  it("lets grpcurl's way of working list and call the master's services, with the token only", async () => {
    const dir = tempDir();
    const { file, token } = writeToken(dir);
    const master = await spawnMaster({ args: ["--token-file", file] });
    await spawnAgent({ name: "refl-1", master: master.address, tokenFile: file });
    for (const version of ["v1", "v1alpha"] as const) {
      const { services, pkg, missing, badFile } = await discover(
        master.address,
        version,
        bearer(token),
      );
      expect(services).toEqual([
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "sloth.master.v1.MasterService",
        "sloth.state.v1.StateService",
      ]);
      expect(missing.errorResponse?.errorCode).toBe(grpc.status.NOT_FOUND);
      expect(badFile.errorResponse?.errorCode).toBe(grpc.status.NOT_FOUND);
      const Master = (
        pkg as unknown as {
          sloth: {
            master: { v1: { MasterService: Ctor<DynMaster> } };
          };
        }
      ).sloth.master.v1.MasterService;
      const client = new Master(master.address, grpc.credentials.createInsecure());
      try {
        const list = await call<{ agents: { name: string; status: string }[] }>((cb) =>
          client.ListAgents({}, bearer(token), cb),
        );
        expect(list.agents.map((a) => a.name)).toEqual(["refl-1"]);
      } finally {
        client.close();
      }
    }
    // Reflection describes the protocol: it is not public.
    const r = reflect(master.address, "v1", new grpc.Metadata());
    const refused = await r.ask({ listServices: "" }).catch((e: grpc.ServiceError) => e);
    r.close();
    expect((refused as grpc.ServiceError).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("serves both on an agent: a probe without the token, a command run through reflection", async () => {
    const dir = tempDir();
    const { file, token } = writeToken(dir);
    const master = await spawnMaster({ args: ["--token-file", file] });
    const agent = await spawnAgent({ name: "refl-2", master: master.address, tokenFile: file });
    const health = healthClient(agent.address);
    try {
      const h = await call<{ status: string }>((cb) =>
        health.Check({ service: "sloth.agent.v1.AgentService" }, cb),
      );
      expect(h.status).toBe("SERVING");
    } finally {
      health.close();
    }
    const { services, pkg } = await discover(agent.address, "v1", bearer(token));
    expect(services).toContain("sloth.agent.v1.AgentService");
    const Agent = (
      pkg as unknown as {
        sloth: { agent: { v1: { AgentService: Ctor<DynAgent> } } };
      }
    ).sloth.agent.v1.AgentService;
    const client = new Agent(agent.address, grpc.credentials.createInsecure());
    try {
      const stream = client.RunCommand(
        { spec: { command: "echo from-reflection" } },
        bearer(token),
      );
      const out: Record<string, unknown>[] = [];
      await new Promise<void>((resolve, reject) => {
        stream.on("data", (m: Record<string, unknown>) => out.push(m));
        stream.on("end", resolve);
        stream.on("error", reject);
      });
      const text = out
        .map((m) => (m.event as { output?: { data: Buffer } }).output?.data?.toString() ?? "")
        .join("");
      expect(text).toContain("from-reflection");
    } finally {
      client.close();
    }
  });
});
