/**
 * Stable error codes of `@sloth/state`. Check them with
 * {@link isStateError}; `isSlothError` from `@sloth/client` recognises these
 * errors too, because both brand errors with the same registered symbol.
 */
export type StateErrorCode =
  | "SLOTH_INVALID_ARGUMENT"
  | "SLOTH_STATE_NOT_A_NUMBER"
  | "SLOTH_STATE_BUSY"
  | "SLOTH_STATE_CLOSED"
  | "SLOTH_STATE_UNAVAILABLE"
  | "SLOTH_LOCK_HELD"
  | "SLOTH_LOCK_LOST"
  | "SLOTH_CANCELLED";

const BRAND = Symbol.for("sloth.error");

/** Options carried by every {@link StateError}. */
export interface StateErrorOptions {
  /** The underlying error. */
  cause?: unknown;
  /** How the user can fix it. */
  hint?: string;
  /** Data needed to act on the error (key, lock holder, expiry). */
  details?: Record<string, unknown>;
  /** True when trying again later can succeed (a held lock, a busy file). */
  retryable?: boolean;
}

/** Error thrown by `@sloth/state`: a stable `code`, a message, data to act on. */
export class StateError extends Error {
  /** Stable machine-readable code. */
  readonly code: StateErrorCode;
  /** How the user can fix it, if known. */
  readonly hint: string | undefined;
  /** Data needed to act on the error. */
  readonly details: Record<string, unknown>;
  /** True when trying again later can succeed. */
  readonly retryable: boolean;
  readonly [BRAND] = true;

  constructor(code: StateErrorCode, message: string, options: StateErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "StateError";
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
    this.retryable = options.retryable ?? false;
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
export function isStateError(e: unknown, code?: StateErrorCode): e is StateError {
  if (typeof e !== "object" || e === null || !(BRAND in e)) return false;
  return code === undefined || (e as { code?: unknown }).code === code;
}

/** Shorthand for an invalid-argument error: "cannot <verb>: <reason>". */
export function invalid(message: string, details: Record<string, unknown> = {}): StateError {
  return new StateError("SLOTH_INVALID_ARGUMENT", message, { details });
}
