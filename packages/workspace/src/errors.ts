/**
 * Stable error codes of `@sloth/workspace`. The errors carry the same brand
 * as `SlothError` of `@sloth/client`, so `isSlothError(e)` recognises them
 * too; {@link isWorkspaceError} narrows to these codes.
 */
export type WorkspaceErrorCode =
  /** An archive, manifest or deleted list would write, link or delete outside its target. */
  | "SLOTH_ARCHIVE_UNSAFE"
  /** An archive is malformed (truncated, bad checksum, not gzip when gzip was announced). */
  | "SLOTH_ARCHIVE_INVALID"
  /** A workspace, an entry or an archive exceeds a configured limit. */
  | "SLOTH_WORKSPACE_TOO_LARGE"
  /** A blob's content does not hash to its name or was not asked for. */
  | "SLOTH_BLOB_MISMATCH"
  /** A blob a manifest needs is not in the cache, or not in the workspace being packed. */
  | "SLOTH_BLOB_MISSING"
  /** A file changed between the scan and the packing of its content. */
  | "SLOTH_WORKSPACE_CHANGED"
  /** A change cannot be applied without losing data the sender never saw. */
  | "SLOTH_WORKSPACE_CONFLICT"
  /** A manifest or argument is malformed. */
  | "SLOTH_INVALID_ARGUMENT";

// The brand shared with @sloth/client's SlothError: a guard that checks it
// works across two installed copies of either package.
const BRAND = Symbol.for("sloth.error");

/** Options of a {@link WorkspaceError}. */
export interface WorkspaceErrorOptions {
  /** The underlying error. */
  cause?: unknown;
  /** How the user can fix it. */
  hint?: string;
  /** Data needed to act, such as `entry` (the offending path) or `limit`. */
  details?: Record<string, unknown>;
}

/** An error of this package: a stable `code`, the offending entry in `details.entry`. */
export class WorkspaceError extends Error {
  readonly code: WorkspaceErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown>;
  /** Retrying the same transfer cannot fix a bad archive or a limit. */
  readonly retryable: boolean;
  readonly [BRAND] = true;

  constructor(code: WorkspaceErrorCode, message: string, options: WorkspaceErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "WorkspaceError";
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
    // A file that changed while being packed may be packed fine a moment later.
    this.retryable = code === "SLOTH_WORKSPACE_CHANGED";
  }

  /** The message followed by the hint, as a CLI prints it. */
  describe(): string {
    return this.hint ? `${this.message}; ${this.hint}` : this.message;
  }
}

/** True when `e` is a {@link WorkspaceError} (from any installed copy), optionally with `code`. */
export function isWorkspaceError(e: unknown, code?: WorkspaceErrorCode): e is WorkspaceError {
  if (typeof e !== "object" || e === null || !(BRAND in e)) return false;
  return code === undefined || (e as WorkspaceError).code === code;
}

/** The error for an entry that would escape its target: names the entry. */
export function unsafe(entry: string, reason: string): WorkspaceError {
  return new WorkspaceError(
    "SLOTH_ARCHIVE_UNSAFE",
    `cannot accept entry ${JSON.stringify(entry)}: ${reason}`,
    { details: { entry, reason } },
  );
}

/** The error for a limit exceeded. */
export function tooLarge(
  what: string,
  bytes: number,
  limit: number,
  entry?: string,
): WorkspaceError {
  return new WorkspaceError(
    "SLOTH_WORKSPACE_TOO_LARGE",
    `cannot accept ${what}: ${bytes} bytes is over the limit of ${limit} bytes`,
    {
      details: { bytes, limit, ...(entry === undefined ? {} : { entry }) },
      hint: "raise the limit or exclude files (`exclude` globs, .slothignore)",
    },
  );
}
