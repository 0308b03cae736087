import crypto from "node:crypto";
import tls from "node:tls";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createCertificateAuthority, issueCertificate } from "./ca.js";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("certificate serial numbers", () => {
  it("are valid DER whatever the random bytes (OpenSSL refuses an integer with a zero byte too many)", async () => {
    // Random bytes that begin 00 00 11: the DER integer a serial made of
    // them gets keeps a zero byte too many.
    const real = crypto.randomBytes;
    vi.spyOn(crypto, "randomBytes").mockImplementation(((n: number) => {
      const b = real(n);
      b.set([0, 0, 0x11].slice(0, n));
      return b;
    }) as typeof crypto.randomBytes);
    const ca = await createCertificateAuthority();
    const pair = await issueCertificate({ ca, name: "srv", sans: ["127.0.0.1"] });
    vi.restoreAllMocks();
    // OpenSSL parses both: a TLS context takes them.
    expect(() =>
      tls.createSecureContext({ cert: pair.cert, key: pair.key, ca: ca.cert }),
    ).not.toThrow();
    for (const pem of [ca.cert, pair.cert]) {
      const serial = new crypto.X509Certificate(pem).serialNumber;
      expect(serial).toMatch(/^[4-7][0-9A-F]{31}$/);
    }
  });
});
