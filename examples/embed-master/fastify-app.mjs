// Embedding the Sloth Runner master in a fastify app with
// @connectrpc/connect-fastify, next to your own routes.
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import { createMaster } from "@sloth/master";
import Fastify from "fastify";

/**
 * Starts a fastify app over HTTPS/HTTP2 serving the master's RPCs, its
 * Prometheus `/metrics`, and your own `/healthz`.
 */
export async function startFastifyMaster({
  cert,
  key,
  ca,
  token,
  registryPath,
  port = 0,
  onEvent,
}) {
  const master = createMaster({ registryPath, token, agentTls: { ca, cert, key } });
  const app = Fastify({ http2: true, https: { cert, key, allowHTTP1: true } });
  // Refuse callers without the cluster token before their request is read:
  // Connect reads (and decompresses) a body before its interceptors run.
  app.addHook("onRequest", async (req, reply) => {
    if (req.url.startsWith("/sloth.") && !master.authorize(req.raw))
      await reply.code(401).send({ code: "unauthenticated", message: "missing or invalid token" });
  });
  await app.register(fastifyConnectPlugin, {
    routes: master.routes,
    interceptors: master.interceptors,
    contextValues: (req) => master.contextValues(req),
  });
  app.get("/metrics", async (_req, reply) => {
    reply.type("text/plain; version=0.0.4");
    return master.metrics();
  });
  app.get("/healthz", async () => "ok\n");
  await app.listen({ port, host: "127.0.0.1" });
  // Registry changes, for your own bookkeeping.
  const watching = new AbortController();
  const events = (async () => {
    for await (const event of master.events(watching.signal)) onEvent?.(event);
  })();
  return {
    master,
    port: app.server.address().port,
    async close() {
      watching.abort();
      await events;
      await master.stop();
      await app.close();
    },
  };
}
