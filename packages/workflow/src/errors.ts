/**
 * Errors of @sloth/workflow. They carry the same brand as `SlothError` from
 * `@sloth/client`, so that package's `isSlothError` recognises them too,
 * without this package depending on the client (and its native modules).
 */

/** Stable codes of the errors this package throws. */
export type WorkflowErrorCode =
  /** The workflow model is malformed (duplicate task, bad setting). */
  | "SLOTH_WORKFLOW_INVALID"
  /** A task depends on a task that does not exist. */
  | "SLOTH_WORKFLOW_UNKNOWN_DEPENDENCY"
  /** The dependencies form a cycle. */
  | "SLOTH_WORKFLOW_CYCLE"
  /** A task named on the command line (or in options) does not exist. */
  | "SLOTH_WORKFLOW_UNKNOWN_TASK"
  /** The workflow asks for stack features (locks, snapshots, drift, rollback). */
  | "SLOTH_WORKFLOW_NEEDS_STACKS";

const BRAND = Symbol.for("sloth.error");

/** Options of a {@link WorkflowError}. */
export interface WorkflowErrorOptions {
  cause?: unknown;
  /** How the user can fix it. */
  hint?: string | undefined;
  /** Data needed to act (task names, the cycle). */
  details?: Record<string, unknown>;
}

/** An error with a stable `code`, raised before or instead of a run. */
export class WorkflowError extends Error {
  readonly code: WorkflowErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown>;
  /** Never retryable: the model has to change. */
  readonly retryable = false;
  readonly [BRAND] = true;

  constructor(code: WorkflowErrorCode, message: string, options: WorkflowErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "WorkflowError";
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  /** The message followed by the hint, as the CLI prints it. */
  describe(): string {
    return this.hint ? `${this.message}; ${this.hint}` : this.message;
  }
}

/**
 * True when `e` is a {@link WorkflowError}, optionally with the given code.
 * Works across two installed copies of this package, unlike `instanceof`.
 */
export function isWorkflowError(e: unknown, code?: WorkflowErrorCode): e is WorkflowError {
  if (typeof e !== "object" || e === null || !(BRAND in e)) return false;
  const c = (e as { code?: unknown }).code;
  if (typeof c !== "string" || !c.startsWith("SLOTH_WORKFLOW_")) return false;
  return code === undefined || c === code;
}
