/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** A JSON object. */
export type JsonObject = { [key: string]: Json };

/** Where a stack is: never run, running now, or how its last execution ended. */
export type StackStatus = "created" | "running" | "completed" | "failed";

/** A deployment stack. */
export interface Stack {
  name: string;
  description: string;
  status: StackStatus;
  /** The current state: what the last execution left, or a restored snapshot. */
  state: JsonObject;
  /** Names of the stacks this one depends on (deployed before it). */
  dependsOn: string[];
  /** Number of the last snapshot (0: none). */
  lastVersion: number;
  createdAt: Date;
  updatedAt: Date;
  lastExecutionAt: Date | undefined;
  executionCount: number;
  lastRunId: string | undefined;
  /** The lock, when held (a stale one is reported with `stale`). */
  lock: StackLock | undefined;
}

/** A held stack lock. */
export interface StackLock {
  /** Random id of this holding; {@link StackStore.unlock} takes it. */
  lockId: string;
  lockedBy: string;
  operation: string;
  reason: string;
  metadata: JsonObject;
  lockedAt: Date;
  expiresAt: Date | undefined;
  host: string;
  pid: number;
  /**
   * Why the lock no longer holds although its row is there: it expired, or
   * the process holding it is gone. The next `lock` breaks it.
   */
  stale?: "expired" | "holder gone" | undefined;
}

/** What a snapshot holds. */
export interface SnapshotContent {
  state: JsonObject;
  dependsOn: string[];
  resources: ResourceSpec[];
}

/** A snapshot of a stack: v1, v2, ... */
export interface StackVersion {
  version: number;
  /** `v` and the number. */
  name: string;
  creator: string;
  description: string;
  createdAt: Date;
  content: SnapshotContent;
}

/** How a resource is declared. */
export interface ResourceSpec {
  name: string;
  /** Free-form kind (service, file, bucket, ...). */
  type: string;
  /** What the resource should be: compared with what `check` prints. */
  desired: Json;
  /**
   * Shell command printing the resource as it is (JSON, or text compared
   * with a string `desired`); a non-zero exit means it is missing.
   */
  check?: string | undefined;
  /** Shell command putting the resource right (`stack drift fix`). */
  fix?: string | undefined;
  /** Resources of the same stack fixed before this one. */
  dependsOn?: string[] | undefined;
}

/** A resource with what the last drift detection found. */
export interface StackResource extends ResourceSpec {
  dependsOn: string[];
  actual: Json | undefined;
  drift: DriftFinding | undefined;
  checkedAt: Date | undefined;
}

/** One difference between two JSON values. */
export interface Difference {
  /** Where: `$` for the whole value, `$.spec.replicas`, `$.ports[1]`. */
  path: string;
  /** `changed`: both have it, unlike; `missing`: only the first has it; `extra`: only the second. */
  kind: "changed" | "missing" | "extra";
  /** The first side's value (desired, or the older version); absent for `extra`. */
  before?: Json;
  /** The second side's value (actual, or the newer version); absent for `missing`. */
  after?: Json;
}

/** What drift detection found for one resource. */
export interface DriftFinding {
  /**
   * `in_sync`; `drifted` (differences listed); `missing` (its check exited
   * non-zero); `unchecked` (no check command); `error` (the check could not
   * run, timed out, or printed nothing usable).
   */
  status: "in_sync" | "drifted" | "missing" | "unchecked" | "error";
  differences: Difference[];
  message?: string | undefined;
}

/** A drift detection's result for a stack. */
export interface DriftReport {
  stack: string;
  checkedAt: Date;
  /** True when every checked resource is in sync. */
  inSync: boolean;
  resources: { name: string; type: string; finding: DriftFinding; actual?: Json | undefined }[];
}

/** An entry of the audit trail. */
export interface StackEvent {
  id: number;
  stack: string;
  type: string;
  severity: "info" | "warning" | "error";
  message: string;
  source: string;
  data: JsonObject;
  createdAt: Date;
}

/** One pre-flight check of {@link validateStack}. */
export interface ValidationCheck {
  check: string;
  /** `error` fails the validation; `warning` is reported only. */
  level: "ok" | "warning" | "error";
  message: string;
}
