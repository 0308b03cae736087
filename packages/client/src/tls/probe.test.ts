import net, { type AddressInfo } from "node:net";
import tls from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { fromConnectError } from "../connect-errors.js";
import { SlothError } from "../errors.js";
import { agentClient, connect } from "../index.js";
import { createCertificateAuthority, issueCertificate } from "./ca.js";
import { explainClosedConnection, probeTls } from "./probe.js";

const servers: net.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

async function listen(server: net.Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const closed = () =>
  new SlothError("SLOTH_UNREACHABLE", "cannot reach agent at X: the connection was closed", {
    retryable: true,
  });

describe("probeTls and explainClosedConnection", () => {
  it("tell a TLS server apart from a cleartext one and from nothing at all", async () => {
    const ca = await createCertificateAuthority();
    const pair = await issueCertificate({ ca, name: "srv", sans: ["127.0.0.1"] });
    // Asks for client certificates, as an agent started with --tls-ca does.
    const secure = await listen(
      tls.createServer({ cert: pair.cert, key: pair.key, ca: ca.cert, requestCert: true }, (s) =>
        s.on("error", () => {}),
      ),
    );
    // A cleartext server that drops what it cannot read.
    const plain = await listen(net.createServer((s) => s.on("data", () => s.destroy())));
    const gone = await listen(net.createServer());
    const goneAddress = gone;
    await new Promise((r) => servers.pop()?.close(r));

    expect(await probeTls(secure)).toBe(true);
    expect(await probeTls(plain)).toBe(false);
    expect(await probeTls(goneAddress)).toBe(false);
    expect(await probeTls("not an address")).toBe(false);

    const explained = await explainClosedConnection(closed(), { kind: "agent", address: secure });
    expect(explained.code).toBe("SLOTH_TLS_REQUIRED");
    expect(explained.retryable).toBe(false);
    expect(explained.describe()).toBe(
      `agent at ${secure} serves TLS, and the call did not use it; pass --tls-ca with the cluster CA (and --tls-cert/--tls-key if it asks for client certificates), or record them for the master with \`sloth-runner master update NAME --tls-ca FILE ...\``,
    );
    // Anything else is left as it was.
    const same = closed();
    expect(await explainClosedConnection(same, { kind: "agent", address: plain })).toBe(same);
    const refused = new SlothError("SLOTH_UNREACHABLE", "cannot reach x: connection refused");
    expect(await explainClosedConnection(refused, { kind: "master", address: secure })).toBe(
      refused,
    );
  });

  it("names a cleartext server's refusal of a TLS handshake in OpenSSL's words, without its codes", async () => {
    const ca = await createCertificateAuthority();
    // A cleartext server answers a TLS hello with bytes that are not TLS.
    const plain = await listen(
      net.createServer((s) => {
        s.on("error", () => {});
        s.once("data", () => s.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
      }),
    );
    const conn = connect({ address: plain, token: "t".repeat(32), tls: { ca: ca.cert } });
    try {
      const e = await agentClient(conn)
        .health({}, { timeoutMs: 10_000 })
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      const err = fromConnectError(e, { kind: "agent", address: plain });
      expect(err.describe()).toMatch(
        /^cannot reach agent at 127\.0\.0\.1:\d+: TLS handshake failed \([a-z ]+\); the server may not use TLS: drop --tls-\* for it, or start it with --tls-cert\/--tls-key$/,
      );
      expect(err.describe()).not.toMatch(/error:|\.c:\d+/);
    } finally {
      conn.close();
    }
  });
});
