// Embedding the Sloth Runner master in your own Node HTTP/2 server, with your
// own TLS and your own routes next to the master's.
//
//   SLOTH_RUNNER_TOKEN=... node http2-server.mjs server.crt server.key ca.crt
import fs from "node:fs";
import http2 from "node:http2";
import { createMaster } from "@sloth/master";

/**
 * Starts an HTTPS (HTTP/2 and HTTP/1.1) server on 127.0.0.1 that serves
 * `/healthz` itself and everything else through the master.
 */
export async function startEmbeddedMaster({
  cert,
  key,
  ca,
  token,
  registryPath,
  port = 0,
  onEvent,
}) {
  const master = createMaster({
    registryPath,
    token,
    // Dial agents with the CA that signed their certificates, presenting
    // this server's certificate as client certificate (agents use mTLS).
    agentTls: { ca, cert, key },
  });
  const server = http2.createSecureServer({ cert, key, allowHTTP1: true }, (req, res) => {
    if (req.url === "/healthz") {
      res.end("ok\n");
      return;
    }
    master.handler(req, res);
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  // Registry changes, for your own bookkeeping.
  const watching = new AbortController();
  const events = (async () => {
    for await (const event of master.events(watching.signal)) onEvent?.(event);
  })();
  return {
    master,
    port: server.address().port,
    async close() {
      watching.abort();
      await events;
      await master.stop();
      server.close();
    },
  };
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const [cert, key, ca] = process.argv.slice(2).map((f) => fs.readFileSync(f));
  const running = await startEmbeddedMaster({
    cert,
    key,
    ca,
    token: process.env.SLOTH_RUNNER_TOKEN,
    registryPath: process.env.REGISTRY ?? "registry.db",
    port: Number(process.env.PORT ?? 50053),
    onEvent: (e) => console.log(`${e.type}: ${e.agent.name}`),
  });
  console.log(`master embedded on https://127.0.0.1:${running.port}`);
  process.on("SIGINT", () => void running.close());
}
