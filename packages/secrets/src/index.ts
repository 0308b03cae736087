/**
 * `@sloth/secrets`: encrypted secrets for workflows. Values are sealed with
 * AES-256-GCM (a fresh nonce each time; the environment, name and version
 * are bound in as associated data) in SQLite (`secrets.db`), under a key
 * from a key file or a passphrase; each secret keeps its last versions;
 * every set, read, use and deletion is recorded in an audit trail that
 * never holds a value. {@link redactor} masks known values in any text.
 */
export { isSecretsError, SecretsError, type SecretsErrorCode } from "./errors.js";
export { MIN_MASKED_LENGTH, type Redactor, redactor, type StreamMasker } from "./redact.js";
export {
  checkEnvName,
  checkSecretName,
  DEFAULT_ENV,
  openSecretsStore,
  type SecretRef,
  type SecretsStore,
  type SecretsStoreOptions,
} from "./store.js";
export {
  type AuditEntry,
  MAX_VALUE_BYTES,
  MAX_VERSIONS,
  type SecretInfo,
  type SecretsKey,
} from "./types.js";
