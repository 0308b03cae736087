/**
 * Stable error codes of `@sloth/history`. Check them with
 * {@link isHistoryError}; `isSlothError` from `@sloth/client` recognises
 * these errors too, because both brand errors with the same registered symbol.
 */
export type HistoryErrorCode =
  | "SLOTH_INVALID_ARGUMENT"
  | "SLOTH_HISTORY_RUN_NOT_FOUND"
  | "SLOTH_HISTORY_AMBIGUOUS_ID"
  | "SLOTH_HISTORY_TASK_NOT_FOUND";

const BRAND = Symbol.for("sloth.error");

/** Options carried by every {@link HistoryError}. */
export interface HistoryErrorOptions {
  /** The underlying error. */
  cause?: unknown;
  /** How the user can fix it. */
  hint?: string;
  /** Data needed to act on the error (run id, matching ids). */
  details?: Record<string, unknown>;
}

/** Error thrown by `@sloth/history`: a stable `code`, a message, data to act on. */
export class HistoryError extends Error {
  /** Stable machine-readable code. */
  readonly code: HistoryErrorCode;
  /** How the user can fix it, if known. */
  readonly hint: string | undefined;
  /** Data needed to act on the error. */
  readonly details: Record<string, unknown>;
  readonly [BRAND] = true;

  constructor(code: HistoryErrorCode, message: string, options: HistoryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "HistoryError";
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
export function isHistoryError(e: unknown, code?: HistoryErrorCode): e is HistoryError {
  if (typeof e !== "object" || e === null || !(BRAND in e)) return false;
  return code === undefined || (e as { code?: unknown }).code === code;
}
