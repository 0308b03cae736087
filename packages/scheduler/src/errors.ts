/**
 * Stable error codes of `@sloth/scheduler`. Check them with
 * {@link isSchedulerError}; `isSlothError` from `@sloth/client` recognises
 * these errors too, because both brand errors with the same registered symbol.
 */
export type SchedulerErrorCode =
  | "SLOTH_INVALID_ARGUMENT"
  | "SLOTH_SCHEDULE_NOT_FOUND"
  | "SLOTH_SCHEDULE_EXISTS"
  | "SLOTH_SCHEDULE_BUSY"
  | "SLOTH_SCHEDULER_RUNNING";

const BRAND = Symbol.for("sloth.error");

/** Options carried by every {@link SchedulerError}. */
export interface SchedulerErrorOptions {
  cause?: unknown;
  /** How the user can fix it. */
  hint?: string;
  details?: Record<string, unknown>;
}

/** Error thrown by `@sloth/scheduler`: a stable `code`, a message, a hint. */
export class SchedulerError extends Error {
  readonly code: SchedulerErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown>;
  readonly retryable = false;
  readonly [BRAND] = true;

  constructor(code: SchedulerErrorCode, message: string, options: SchedulerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SchedulerError";
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
export function isSchedulerError(e: unknown, code?: SchedulerErrorCode): e is SchedulerError {
  if (typeof e !== "object" || e === null || !(BRAND in e)) return false;
  return code === undefined || (e as { code?: unknown }).code === code;
}
