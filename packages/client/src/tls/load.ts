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
  return {
    cert: paths.cert ? readPem(paths.cert, "certificate") : undefined,
    key: paths.key ? readPem(paths.key, "private key") : undefined,
    ca: paths.ca ? readPem(paths.ca, "CA certificate") : undefined,
  } as TlsMaterial & { cert?: string; key?: string; ca?: string };
}
