import fs from "node:fs";
import type { DataDir } from "@sloth/client/light";
import type { Redactor } from "@sloth/secrets";

/** The environment variable that gives the secrets passphrase (instead of the key file). */
export const SECRETS_KEY_ENV = "SLOTH_RUNNER_SECRETS_KEY";

/** Where the secrets key comes from: the passphrase variable, else the key file of the data dir. */
export function secretsKeyOf(dataDir: DataDir): { file: string } | { passphrase: string } {
  const passphrase = process.env[SECRETS_KEY_ENV];
  return passphrase ? { passphrase } : { file: dataDir.secretsKey };
}

/** What a run needs of the secrets: the Lua module, and the masking of their values. */
export interface RunSecrets {
  module: {
    name: string;
    url: string;
    options: { [key: string]: string | Record<string, string> };
  };
  redact: Redactor;
}

/**
 * Reads the current values of `env` once (recorded in the audit trail as
 * used by `purpose`): the Lua `secrets` module gets them, and the run masks
 * them in everything it shows and records. Without a secrets database the
 * module has none; without the key, every `secrets.get` says why.
 */
export async function loadRunSecrets(
  dataDir: DataDir,
  env: string,
  purpose: string,
): Promise<RunSecrets> {
  const { checkEnvName, openSecretsStore, redactor, isSecretsError } = await import(
    "@sloth/secrets"
  );
  checkEnvName(env);
  const url = import.meta.resolve("@sloth/secrets/lua");
  let values: Record<string, string> = {};
  let unavailable: string | undefined;
  if (fs.existsSync(dataDir.secretsDb)) {
    const store = openSecretsStore({ path: dataDir.secretsDb, key: secretsKeyOf(dataDir) });
    try {
      values = Object.fromEntries(store.all(env, purpose));
    } catch (e) {
      if (!isSecretsError(e)) throw e;
      unavailable = e.describe();
    } finally {
      store.close();
    }
  }
  return {
    module: {
      name: "secrets",
      url,
      options: { env, values, ...(unavailable ? { unavailable } : {}) },
    },
    redact: redactor(Object.values(values)),
  };
}
