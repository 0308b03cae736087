import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { SlothError } from "../errors.js";

/** A certificate and its private key, PEM. */
export interface CertificatePair {
  cert: string;
  key: string;
}

/** Options of {@link createCertificateAuthority}. */
export interface CreateCaOptions {
  /** Subject common name (default "Sloth Runner CA"). */
  commonName?: string;
  /** Validity in days (default 3650). */
  days?: number;
}

/** Options of {@link issueCertificate}. */
export interface IssueOptions {
  /** The CA that signs. */
  ca: CertificatePair;
  /** Subject common name, such as the agent or master name. */
  name: string;
  /** Host names and IP addresses the certificate is valid for. */
  sans: readonly string[];
  /** Validity in days (default 825). */
  days?: number;
  /**
   * A client certificate only (the CLI of an operator talking to an mTLS
   * master): no `sans` needed, and it cannot serve.
   */
  client?: boolean;
}

type Forge = typeof import("node-forge");

// node-forge is loaded only when certificates are made.
async function forge(): Promise<Forge> {
  return ((await import("node-forge")) as unknown as { default: Forge }).default;
}

function rsaKeys(): { privateKey: string; publicKey: string } {
  return crypto.generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
}

function serial(): string {
  // A positive serial (top bit clear) whose first byte is not zero: DER
  // integers are minimal, and a certificate whose serial begins with a zero
  // byte is refused by OpenSSL ("illegal padding"). 126 random bits.
  const b = crypto.randomBytes(16);
  b[0] = ((b[0] ?? 0) & 0x3f) | 0x40;
  return b.toString("hex");
}

function validity(cert: { validity: { notBefore: Date; notAfter: Date } }, days: number): void {
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 5 * 60_000);
  cert.validity.notAfter = new Date(now + days * 86_400_000);
}

/** Creates a self-signed certificate authority for a cluster. */
export async function createCertificateAuthority(
  options: CreateCaOptions = {},
): Promise<CertificatePair> {
  const f = await forge();
  const keys = rsaKeys();
  const cert = f.pki.createCertificate();
  cert.publicKey = f.pki.publicKeyFromPem(keys.publicKey);
  cert.serialNumber = serial();
  validity(cert, options.days ?? 3650);
  const subject = [{ name: "commonName", value: options.commonName ?? "Sloth Runner CA" }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(f.pki.privateKeyFromPem(keys.privateKey), f.md.sha256.create());
  return { cert: f.pki.certificateToPem(cert), key: keys.privateKey };
}

/**
 * Issues a certificate signed by `ca`, valid as both server and client
 * certificate (each process uses one certificate both ways), for the given
 * host names and IP addresses.
 */
export async function issueCertificate(options: IssueOptions): Promise<CertificatePair> {
  if (options.client && options.sans.length > 0)
    throw new SlothError(
      "SLOTH_INVALID_ARGUMENT",
      `cannot issue a client certificate for '${options.name}' with --san: a client is not reached at an address`,
      { hint: "drop --san, or drop --client for a certificate that also serves" },
    );
  if (!options.client && options.sans.length === 0) {
    throw new SlothError(
      "SLOTH_INVALID_ARGUMENT",
      `cannot issue a certificate for '${options.name}': no --san given`,
      {
        hint: "give every host name and IP address it is reached at, such as --san web-1.example.com --san 10.0.0.7 (or --client for a certificate that only connects, as the CLI's)",
      },
    );
  }
  const f = await forge();
  const caCert = f.pki.certificateFromPem(options.ca.cert);
  const caKey = f.pki.privateKeyFromPem(options.ca.key);
  const keys = rsaKeys();
  const cert = f.pki.createCertificate();
  cert.publicKey = f.pki.publicKeyFromPem(keys.publicKey);
  cert.serialNumber = serial();
  validity(cert, options.days ?? 825);
  cert.setSubject([{ name: "commonName", value: options.name }]);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = options.sans.map((san) => {
    const host = san.replace(/^\[|\]$/g, "");
    return net.isIP(host) ? { type: 7, ip: host } : { type: 2, value: host };
  });
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    options.client
      ? { name: "extKeyUsage", clientAuth: true }
      : { name: "extKeyUsage", serverAuth: true, clientAuth: true },
    ...(options.client ? [] : [{ name: "subjectAltName", altNames }]),
    {
      name: "authorityKeyIdentifier",
      keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes(),
    },
  ]);
  cert.sign(caKey, f.md.sha256.create());
  return { cert: f.pki.certificateToPem(cert), key: keys.privateKey };
}

/** Writes a certificate pair as `<base>.crt` (0644) and `<base>.key` (0600); refuses to overwrite unless `force`. */
export function writeCertificatePair(
  base: string,
  pair: CertificatePair,
  force = false,
): { cert: string; key: string } {
  const cert = `${base}.crt`;
  const key = `${base}.key`;
  fs.mkdirSync(path.dirname(base), { recursive: true, mode: 0o700 });
  for (const file of [cert, key]) {
    if (!force && fs.existsSync(file)) {
      throw new SlothError("SLOTH_INVALID_ARGUMENT", `cannot write ${file}: it already exists`, {
        hint: "pass --force to replace it, or choose another --dir",
      });
    }
  }
  fs.writeFileSync(key, pair.key, { mode: 0o600 });
  fs.chmodSync(key, 0o600);
  fs.writeFileSync(cert, pair.cert, { mode: 0o644 });
  return { cert, key };
}

/** Reads a CA pair written by {@link writeCertificatePair}. */
export function readCertificatePair(base: string): CertificatePair {
  return {
    cert: readPem(`${base}.crt`, "certificate"),
    key: readPem(`${base}.key`, "private key"),
  };
}

/** Reads a PEM file with an error that names it. */
export function readPem(file: string, what: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new SlothError(
      "SLOTH_TLS",
      `cannot read ${what} ${file}: ${code === "ENOENT" ? "no such file" : (cause as Error).message}`,
      {
        cause,
        hint: "check the --tls-* paths; `sloth-runner ca init` and `ca issue` create them",
      },
    );
  }
}
