/**
 * Stable error codes of `@sloth/stack`. Check them with
 * {@link isStackError}; `isSlothError` from `@sloth/client` recognises
 * these errors too, because both brand errors with the same registered symbol.
 */
export type StackErrorCode =
  | "SLOTH_INVALID_ARGUMENT"
  | "SLOTH_STACK_NOT_FOUND"
  | "SLOTH_STACK_EXISTS"
  | "SLOTH_STACK_LOCKED"
  | "SLOTH_STACK_NOT_LOCKED"
  | "SLOTH_STACK_IN_USE"
  | "SLOTH_STACK_VERSION_NOT_FOUND"
  | "SLOTH_STACK_RESOURCE_NOT_FOUND"
  | "SLOTH_STACK_DEPENDENCY_CYCLE";

const BRAND = Symbol.for("sloth.error");

/** Options carried by every {@link StackError}. */
export interface StackErrorOptions {
  /** The underlying error. */
  cause?: unknown;
  /** How the user can fix it. */
  hint?: string;
  /** Data needed to act on the error (stack, holder, versions). */
  details?: Record<string, unknown>;
}

/** Error thrown by `@sloth/stack`: a stable `code`, a message, data to act on. */
export class StackError extends Error {
  /** Stable machine-readable code. */
  readonly code: StackErrorCode;
  /** How the user can fix it, if known. */
  readonly hint: string | undefined;
  /** Data needed to act on the error. */
  readonly details: Record<string, unknown>;
  readonly [BRAND] = true;

  constructor(code: StackErrorCode, message: string, options: StackErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "StackError";
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
export function isStackError(e: unknown, code?: StackErrorCode): e is StackError {
  if (typeof e !== "object" || e === null || !(BRAND in e)) return false;
  return code === undefined || (e as { code?: unknown }).code === code;
}
