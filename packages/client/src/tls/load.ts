import crypto from "node:crypto";
import { SlothError } from "../errors.js";
import type { TlsMaterial } from "../transport.js";
import { readPem } from "./ca.js";

/** Paths of a process's TLS files (`--tls-cert`, `--tls-key`, `--tls-ca`). */
export interface TlsPaths {
  cert?: string | undefined;
  key?: string | undefined;
  ca?: string | undefined;
}

/**
 * Reads TLS files given as flags. Returns undefined when none is given; a
 * certificate needs its key and the other way round.
 */
export function loadTls(
  paths: TlsPaths,
): (TlsMaterial & { cert?: string; key?: string; ca?: string }) | undefined {
  if (!paths.cert && !paths.key && !paths.ca) return undefined;
  if (Boolean(paths.cert) !== Boolean(paths.key)) {
    throw new SlothError(
      "SLOTH_TLS",
      `${paths.cert ? "--tls-cert" : "--tls-key"} needs ${paths.cert ? "--tls-key" : "--tls-cert"}`,
      {
        hint: "give the certificate and its private key together",
      },
    );
  }
  const cert = paths.cert ? readPem(paths.cert, "certificate") : undefined;
  const key = paths.key ? readPem(paths.key, "private key") : undefined;
  const ca = paths.ca ? readPem(paths.ca, "CA certificate") : undefined;
  // Checked here, so a bad file is named instead of failing deep in TLS.
  const x509 = cert ? parseCertificate(cert, paths.cert as string, "--tls-cert") : undefined;
  if (ca) parseCertificate(ca, paths.ca as string, "--tls-ca");
  if (key && x509) {
    let keyObject: crypto.KeyObject;
    try {
      keyObject = crypto.createPrivateKey(key);
    } catch (cause) {
      throw new SlothError(
        "SLOTH_TLS",
        `cannot use private key ${paths.key}: not a PEM private key`,
        {
          cause,
          hint: "pass the .key file written with the certificate by `sloth-runner ca issue`",
        },
      );
    }
    if (!x509.checkPrivateKey(keyObject))
      throw new SlothError(
        "SLOTH_TLS",
        `cannot use private key ${paths.key}: it does not belong to certificate ${paths.cert}`,
        { hint: "pass the key issued with that certificate (NAME.key beside NAME.crt)" },
      );
  }
  return { cert, key, ca } as TlsMaterial & { cert?: string; key?: string; ca?: string };
}

function parseCertificate(pem: string, file: string, flag: string): crypto.X509Certificate {
  try {
    return new crypto.X509Certificate(pem);
  } catch (cause) {
    throw new SlothError("SLOTH_TLS", `cannot use ${flag} ${file}: not a PEM certificate`, {
      cause,
      hint: "pass a file that starts with -----BEGIN CERTIFICATE-----; `sloth-runner ca init` and `ca issue` create them",
    });
  }
}
