import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AgentService } from "@sloth/proto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { agentClient, connect } from "./transport.js";

const seen: Array<{ path: string | undefined; authorization: string | undefined }> = [];
let server: http2.Http2Server;
let port = 0;

beforeAll(async () => {
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(AgentService, {
        health: () => ({ name: "probe-target" }),
        getMetrics: () => ({}),
      }),
  });
  server = http2.createServer((req, res) => {
    seen.push({ path: req.url, authorization: req.headers.authorization });
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

it("sends the token on every call but Health, which needs none", async () => {
  const conn = connect({ address: `127.0.0.1:${port}`, token: "secret-token-0123456789" });
  try {
    const client = agentClient(conn);
    expect((await client.health({})).name).toBe("probe-target");
    await client.getMetrics({});
  } finally {
    conn.close();
  }
  expect(seen).toEqual([
    { path: "/sloth.agent.v1.AgentService/Health", authorization: undefined },
    {
      path: "/sloth.agent.v1.AgentService/GetMetrics",
      authorization: "Bearer secret-token-0123456789",
    },
  ]);
});
