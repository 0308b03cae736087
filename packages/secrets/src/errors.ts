/**
 * Stable error codes of `@sloth/secrets`. Check them with
 * {@link isSecretsError}; `isSlothError` from `@sloth/client` recognises
 * these errors too, because both brand errors with the same registered symbol.
 */
export type SecretsErrorCode =
  | "SLOTH_INVALID_ARGUMENT"
  | "SLOTH_SECRET_NOT_FOUND"
  | "SLOTH_SECRETS_KEY_MISSING"
  | "SLOTH_SECRETS_KEY_WRONG"
  | "SLOTH_SECRET_CORRUPT";

const BRAND = Symbol.for("sloth.error");

/** Options carried by every {@link SecretsError}. */
export interface SecretsErrorOptions {
  cause?: unknown;
  /** How the user can fix it. */
  hint?: string;
  details?: Record<string, unknown>;
}

/** Error thrown by `@sloth/secrets`: a stable `code`, a message, a hint; never a secret value. */
export class SecretsError extends Error {
  readonly code: SecretsErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown>;
  readonly retryable = false;
  readonly [BRAND] = true;

  constructor(code: SecretsErrorCode, message: string, options: SecretsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SecretsError";
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  /** The message followed by the hint, as a CLI prints it. */
  describe(): string {
    return this.hint ? `${this.message}; ${this.hint}` : this.message;
  }
}

/**
 * True when `e` is a Sloth error (from this or another installed copy of the
 * package), optionally with the given code. Works where `instanceof` fails.
 */
export function isSecretsError(e: unknown, code?: SecretsErrorCode): e is SecretsError {
  if (typeof e !== "object" || e === null || !(BRAND in e)) return false;
  return code === undefined || (e as { code?: unknown }).code === code;
}
