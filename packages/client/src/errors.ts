/**
 * Stable error codes of Sloth Runner. Check them with {@link isSlothError},
 * which works across two installed copies of this package, unlike
 * `instanceof`.
 */
export type SlothErrorCode =
  | "SLOTH_INVALID_ARGUMENT"
  | "SLOTH_INVALID_ADDRESS"
  | "SLOTH_MASTER_NOT_FOUND"
  | "SLOTH_MASTER_EXISTS"
  | "SLOTH_MASTER_IS_DEFAULT"
  | "SLOTH_UNREACHABLE"
  | "SLOTH_UNAUTHENTICATED"
  | "SLOTH_TOKEN_MISSING"
  | "SLOTH_AGENT_NOT_FOUND"
  | "SLOTH_AGENT_NAME_HELD"
  | "SLOTH_AGENT_UNAVAILABLE"
  | "SLOTH_PORT_IN_USE"
  | "SLOTH_DATA_DIR"
  | "SLOTH_CANCELLED"
  | "SLOTH_DEADLINE"
  | "SLOTH_TLS_REQUIRED"
  | "SLOTH_TLS"
  | "SLOTH_REMOTE";

const BRAND = Symbol.for("sloth.error");

/** Options carried by every {@link SlothError}. */
export interface SlothErrorOptions {
  /** The underlying error. */
  cause?: unknown;
  /** How the user can fix it, such as "run `sloth-runner master list`". */
  hint?: string;
  /** Data needed to act on the error (names, addresses). */
  details?: Record<string, unknown>;
  /** False when retrying cannot help (bad input, refused credentials). */
  retryable?: boolean;
}

/** Base error of every Sloth Runner package: a stable `code`, a message, a hint. */
export class SlothError extends Error {
  readonly code: SlothErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown>;
  readonly retryable: boolean;
  readonly [BRAND] = true;

  constructor(code: SlothErrorCode, message: string, options: SlothErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SlothError";
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
    this.retryable = options.retryable ?? false;
  }

  /** The message followed by the hint, as the CLI prints it. */
  describe(): string {
    return this.hint ? `${this.message}; ${this.hint}` : this.message;
  }
}

/** True when `e` is a {@link SlothError}, optionally with the given code. */
export function isSlothError(e: unknown, code?: SlothErrorCode): e is SlothError {
  if (typeof e !== "object" || e === null || !(BRAND in e)) return false;
  return code === undefined || (e as SlothError).code === code;
}
