import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCertificateAuthority, issueCertificate } from "./ca.js";
import { loadTls } from "./load.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-tls-load-"));
const f = (name: string) => path.join(dir, name);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

beforeAll(async () => {
  const ca = await createCertificateAuthority();
  const a = await issueCertificate({ ca, name: "a", sans: ["127.0.0.1"] });
  const b = await issueCertificate({ ca, name: "b", sans: ["127.0.0.1"] });
  fs.writeFileSync(f("ca.crt"), ca.cert);
  fs.writeFileSync(f("a.crt"), a.cert);
  fs.writeFileSync(f("a.key"), a.key);
  fs.writeFileSync(f("b.key"), b.key);
  fs.writeFileSync(f("junk"), "not a certificate\n");
}, 60_000);

describe("loadTls", () => {
  it("loads a matching certificate, key and CA", () => {
    const t = loadTls({ cert: f("a.crt"), key: f("a.key"), ca: f("ca.crt") });
    expect(t?.cert).toContain("BEGIN CERTIFICATE");
  });

  it.each([
    [{ cert: "junk", key: "a.key" }, /^cannot use --tls-cert \S+junk: not a PEM certificate$/],
    [{ cert: "a.crt", key: "junk" }, /^cannot use private key \S+junk: not a PEM private key$/],
    [
      { cert: "a.crt", key: "b.key" },
      /^cannot use private key \S+b\.key: it does not belong to certificate \S+a\.crt$/,
    ],
    [
      { cert: "a.crt", key: "a.key", ca: "junk" },
      /^cannot use --tls-ca \S+junk: not a PEM certificate$/,
    ],
  ])("names the bad file: %j", (paths, message) => {
    const abs = Object.fromEntries(Object.entries(paths).map(([k, v]) => [k, f(v)]));
    let err: { code?: string; message?: string; hint?: string } | undefined;
    try {
      loadTls(abs);
    } catch (e) {
      err = e as typeof err;
    }
    expect(err?.code).toBe("SLOTH_TLS");
    expect(err?.message).toMatch(message);
    expect(err?.hint).toBeTruthy();
  });
});
