/**
 * Errors of @sloth/dsl-lua. They share the `sloth.error` brand with the other
 * Sloth packages, so `isSlothError` works across installed copies.
 */

/** Stable codes of the errors this package throws. */
export type DslErrorCode =
  /** The Lua does not compile. */
  | "SLOTH_LUA_SYNTAX"
  /** The Lua raised an error while loading (top level, builder misuse). */
  | "SLOTH_LUA_RUNTIME"
  /** The file compiled and ran but declares something invalid (unknown field, bad delegate_to). */
  | "SLOTH_DSL_INVALID"
  /** The file cannot be read. */
  | "SLOTH_DSL_FILE"
  /** A Lua worker died or the load ran past its deadline. */
  | "SLOTH_LUA_WORKER";

const BRAND = Symbol.for("sloth.error");

/** Where in a workflow file an error points. */
export interface SourceLocation {
  file: string;
  line: number;
  /** The text of that line, trimmed. */
  sourceLine?: string | undefined;
}

/** Options of {@link DslError}. */
export interface DslErrorOptions {
  cause?: unknown;
  location?: SourceLocation | undefined;
  hint?: string | undefined;
}

/** An error in a workflow file or in the Lua engine, with its location when known. */
export class DslError extends Error {
  readonly code: DslErrorCode;
  readonly location: SourceLocation | undefined;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown>;
  readonly retryable = false;
  readonly [BRAND] = true;

  constructor(code: DslErrorCode, message: string, options: DslErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DslError";
    this.code = code;
    this.location = options.location;
    this.hint = options.hint;
    this.details = options.location ? { ...options.location } : {};
  }

  /** The message followed by the hint, as a CLI prints it. */
  describe(): string {
    return this.hint ? `${this.message}; ${this.hint}` : this.message;
  }
}

/** True when `e` is a Sloth error (from any package), optionally with the given code. */
export function isSlothError(e: unknown, code?: string): e is Error & { code: string } {
  if (typeof e !== "object" || e === null || !(BRAND in e)) return false;
  return code === undefined || (e as { code?: unknown }).code === code;
}

/**
 * Formats "file:line: reason" followed by the offending line, the shape every
 * Lua error of this package takes.
 */
export function formatLocated(reason: string, location: SourceLocation | undefined): string {
  if (!location) return printable(reason);
  const head = `${location.file}:${location.line}: ${printable(reason)}`;
  return location.sourceLine
    ? `${head}\n    ${location.line} | ${printable(location.sourceLine.slice(0, 300))}`
    : head;
}

/**
 * Control characters shown as escapes: a binary file given as a workflow
 * would otherwise send raw bytes (and terminal escapes) to the terminal.
 */
function printable(text: string): string {
  let out = "";
  for (const ch of text) {
    const code = ch.charCodeAt(0);
    const control = (code < 0x20 && code !== 0x09 && code !== 0x0a) || code === 0x7f;
    out += control ? `\\x${code.toString(16).padStart(2, "0")}` : ch;
  }
  return out;
}
