import { execFile } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";

// A web server where a master should be: the HTTP/2 preface gets an
// HTTP/1.1 answer.
let server: http.Server;
let port = 0;

beforeAll(async () => {
  server = http.createServer((_req, res) => res.end("hello from a web server\n"));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

it("fails a call to a server that does not speak HTTP/2 with a clear error, and does not crash the process", async () => {
  // In a process of its own: a late session error would crash it after the call failed.
  const index = path.resolve(fileURLToPath(import.meta.url), "../index.ts");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-transport-"));
  try {
    const script = path.join(dir, "call.mjs");
    fs.writeFileSync(
      script,
      `const c = await import(${JSON.stringify(index)});
const conn = c.connect({ address: "127.0.0.1:${port}", token: "0123456789abcdef0123" });
try {
  await c.masterClient(conn).listAgents({});
  console.log("answered");
} catch (e) {
  const err = c.fromConnectError(e, { kind: "master", address: "127.0.0.1:${port}" });
  console.log(err.code + " " + err.describe());
} finally {
  conn.close();
}
await new Promise((r) => setTimeout(r, 300));
console.log("still alive");
`,
    );
    // Not spawnSync: the server answers from this process's event loop.
    const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>(
      (resolve) => {
        execFile(
          process.execPath,
          ["--import", "tsx", script],
          { timeout: 20_000, encoding: "utf8" },
          (err, stdout, stderr) =>
            resolve({
              status: err ? ((err as { code?: number }).code ?? null) : 0,
              stdout,
              stderr,
            }),
        );
      },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/Unhandled 'error' event/);
    expect(r.stdout).toContain(
      `SLOTH_UNREACHABLE cannot reach master at 127.0.0.1:${port}: what answers there does not speak HTTP/2 (protocol error); check the address`,
    );
    expect(r.stdout).toContain("still alive");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
