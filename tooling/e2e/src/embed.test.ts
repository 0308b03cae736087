import http2 from "node:http2";
import path from "node:path";
import { createAgent } from "@sloth/agent";
import {
  connect,
  createCertificateAuthority,
  generateToken,
  issueCertificate,
  masterClient,
} from "@sloth/client";
import { cleanup, onCleanup, REPO_ROOT, tempDir, waitFor } from "@sloth/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

afterAll(cleanup);

type Started = {
  port: number;
  close(): Promise<void>;
  master: {
    registry: { list(): Array<{ name: string; status: string }> };
    authorize(req: { url?: string; headers: Record<string, string> }): boolean;
  };
};
type Starter = (o: Record<string, unknown>) => Promise<Started>;

let pki: {
  ca: string;
  server: { cert: string; key: string };
  agent: { cert: string; key: string };
};

beforeAll(async () => {
  const ca = await createCertificateAuthority();
  pki = {
    ca: ca.cert,
    server: await issueCertificate({ ca, name: "embedded", sans: ["127.0.0.1", "localhost"] }),
    agent: await issueCertificate({ ca, name: "agent", sans: ["127.0.0.1"] }),
  };
}, 60_000);

async function exercise(start: Starter, label: string) {
  const token = generateToken();
  const events: string[] = [];
  const running = await start({
    cert: pki.server.cert,
    key: pki.server.key,
    ca: pki.ca,
    token,
    registryPath: path.join(tempDir(), "registry.db"),
    onEvent: (e: { type: string; agent: { name: string } }) =>
      events.push(`${e.type}:${e.agent.name}`),
  });
  onCleanup(() => running.close());
  const address = `127.0.0.1:${running.port}`;

  const agent = createAgent({
    name: `${label}-agent`,
    masterAddress: address,
    token,
    port: 0,
    bindAddress: "127.0.0.1",
    dataDir: tempDir(),
    tls: { cert: pki.agent.cert, key: pki.agent.key, ca: pki.ca },
  });
  onCleanup(() => agent.stop({ graceMs: 0 }));
  await agent.start();
  await agent.registered();
  await waitFor(() => running.master.registry.list().some((a) => a.status === "active"));

  const conn = connect({ address, token, tls: { ca: pki.ca } });
  onCleanup(() => conn.close());
  const client = masterClient(conn);
  const { agents } = await client.listAgents({});
  expect(agents.map((a) => [a.name, a.tls])).toEqual([[`${label}-agent`, true]]);
  let out = "";
  let exit = -1;
  for await (const res of client.runOnAgent({
    agentName: `${label}-agent`,
    spec: { command: "echo embedded; exit 4" },
  })) {
    const ev = res.event?.event;
    if (ev?.case === "output") out += Buffer.from(ev.value.data).toString();
    if (ev?.case === "exit") exit = ev.value.exitCode;
  }
  expect(out).toBe("embedded\n");
  expect(exit).toBe(4);

  // A caller without the token is refused before its request is inflated,
  // and Health stays public.
  const intruder = connect({ address, token: "wrong-token-0123456789", tls: { ca: pki.ca } });
  onCleanup(() => intruder.close());
  await expect(masterClient(intruder).listAgents({})).rejects.toMatchObject({
    code: 16 /* unauthenticated */,
  });
  const health = await masterClient(intruder).health({});
  expect(health).toBeDefined();
  expect(
    running.master.authorize({ url: "/sloth.master.v1.MasterService/ListAgents", headers: {} }),
  ).toBe(false);
  expect(
    running.master.authorize({
      url: "/sloth.master.v1.MasterService/Health",
      headers: { "content-encoding": "gzip" },
    }),
  ).toBe(false);
  expect(
    running.master.authorize({ url: "/sloth.master.v1.MasterService/Health", headers: {} }),
  ).toBe(true);
  expect(
    running.master.authorize({
      url: "/sloth.master.v1.MasterService/ListAgents",
      headers: { authorization: `Bearer ${token}`, "content-encoding": "gzip" },
    }),
  ).toBe(true);
  return { events, port: running.port };
}

describe("embedding @sloth/master", () => {
  it("mounts into a node:http2 server with the caller's TLS", async () => {
    const { startEmbeddedMaster } = (await import(
      path.join(REPO_ROOT, "examples/embed-master/http2-server.mjs")
    )) as {
      startEmbeddedMaster: Starter;
    };
    const { events } = await exercise(startEmbeddedMaster, "h2");
    await waitFor(() => events.includes("registered:h2-agent"));
  });

  it("mounts into fastify with @connectrpc/connect-fastify", async () => {
    const { startFastifyMaster } = (await import(
      path.join(REPO_ROOT, "examples/embed-master/fastify-app.mjs")
    )) as {
      startFastifyMaster: Starter;
    };
    const { events, port } = await exercise(startFastifyMaster, "fastify");
    await waitFor(() => events.includes("registered:fastify-agent"));
    const metrics = await new Promise<string>((resolve, reject) => {
      const session = http2.connect(`https://127.0.0.1:${port}`, { ca: pki.ca });
      session.on("error", reject);
      const req = session.request({ ":path": "/metrics" });
      let text = "";
      req.on("data", (d: Buffer) => {
        text += d.toString();
      });
      req.on("end", () => {
        session.close();
        resolve(text);
      });
    });
    expect(metrics).toMatch(/sloth_master_agents\{status="active"\} 1/);
  });
});
