/** A secret as listed: never its value. */
export interface SecretInfo {
  env: string;
  name: string;
  /** The current version (1 for a new secret, +1 at every `set`). */
  version: number;
  /** Versions kept (the newest ones, at most {@link MAX_VERSIONS}). */
  versions: number;
  updatedAt: Date;
  /** user@host of the process that set the current version. */
  updatedBy: string;
}

/** One line of the audit trail. */
export interface AuditEntry {
  id: number;
  at: Date;
  action: "set" | "get" | "delete" | "rotate-key" | "use";
  env: string | undefined;
  name: string | undefined;
  version: number | undefined;
  /** user@host */
  actor: string;
  pid: number;
  detail: string;
}

/**
 * Where the key comes from: a key file (32 random bytes, base64; created
 * with mode 0600 by the first `set` when absent), or a passphrase
 * (stretched with scrypt and a salt kept in the database).
 */
export type SecretsKey = { file: string } | { passphrase: string };

/** Versions kept per secret. */
export const MAX_VERSIONS = 10;
/** The largest value, in bytes of UTF-8. */
export const MAX_VALUE_BYTES = 64 * 1024;
