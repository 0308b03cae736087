import fs from "node:fs";
import type { DataDir } from "@sloth/client/light";
import type { Redactor } from "@sloth/secrets";
import type { LineLogger } from "../logger.js";

/** The environment variable that gives the secrets passphrase (instead of the key file). */
export const SECRETS_KEY_ENV = "SLOTH_RUNNER_SECRETS_KEY";

/** Where the secrets key comes from: the passphrase variable, else the key file of the data dir. */
export function secretsKeyOf(dataDir: DataDir): { file: string } | { passphrase: string } {
  const passphrase = process.env[SECRETS_KEY_ENV];
  return passphrase ? { passphrase } : { file: dataDir.secretsKey };
}

/** Why the key file is not safe to keep, or undefined: other users may read or change it. */
export function keyFileWarning(dataDir: DataDir): string | undefined {
  if (process.env[SECRETS_KEY_ENV]) return undefined;
  let mode: number;
  try {
    mode = fs.statSync(dataDir.secretsKey).mode;
  } catch {
    return undefined;
  }
  if ((mode & 0o077) === 0) return undefined;
  const perm = (mode & 0o777).toString(8).padStart(4, "0");
  return `secrets key ${dataDir.secretsKey} can be read or changed by other users (mode ${perm}): run chmod 600 ${dataDir.secretsKey}`;
}

/** What a run needs of the secrets: the Lua module, the masking of their values, and what to tell. */
export interface RunSecrets {
  module: {
    name: string;
    url: string;
    options: { [key: string]: string | Record<string, string> };
  };
  redact: Redactor;
  /** The values read, for modules that mask what they record themselves (`stack`). */
  values: string[];
  notices: string[];
}

/**
 * Reads the current values of `env` once (recorded in the audit trail as
 * used by `purpose`): the Lua `secrets` module gets them, and the run masks
 * them in everything it shows and records. Without a secrets database the
 * module has none; when the values cannot be read (no key, a wrong key, a
 * damaged database), the run goes on and every `secrets.get` says why.
 */
export async function loadRunSecrets(
  dataDir: DataDir,
  env: string,
  purpose: string,
): Promise<RunSecrets> {
  const { checkEnvName, openSecretsStore, redactor } = await import("@sloth/secrets");
  checkEnvName(env);
  const url = import.meta.resolve("@sloth/secrets/lua");
  let values: Record<string, string> = {};
  let unavailable: string | undefined;
  const notices: string[] = [];
  if (fs.existsSync(dataDir.secretsDb)) {
    const warning = keyFileWarning(dataDir);
    if (warning) notices.push(warning);
    try {
      const store = openSecretsStore({ path: dataDir.secretsDb, key: secretsKeyOf(dataDir) });
      try {
        values = Object.fromEntries(store.all(env, purpose));
      } finally {
        store.close();
      }
    } catch (e) {
      const { isSlothError } = await import("@sloth/client/light");
      unavailable = isSlothError(e) ? e.describe() : String((e as Error)?.message ?? e);
      notices.push(`secrets are unavailable to this run: ${unavailable}`);
    }
  }
  return {
    module: {
      name: "secrets",
      url,
      options: { env, values, ...(unavailable ? { unavailable } : {}) },
    },
    redact: redactor(Object.values(values)),
    values: Object.values(values),
    notices,
  };
}

/** `logger` with secret values masked in its messages and fields. */
export function maskingLogger(logger: LineLogger, redact: Redactor): LineLogger {
  if (redact.empty) return logger;
  const wrap =
    (f: (o: object, m?: string) => void) =>
    (o: object, m?: string): void =>
      f(redact.value(o), m === undefined ? undefined : redact.text(m));
  return {
    info: wrap((o, m) => logger.info(o, m)),
    warn: wrap((o, m) => logger.warn(o, m)),
    error: wrap((o, m) => logger.error(o, m)),
    debug: wrap((o, m) => logger.debug(o, m)),
  };
}
