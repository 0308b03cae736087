/** Messages between the main thread and Lua workers. */
import type { Value } from "@sloth/workflow";
import type { DslErrorCode, SourceLocation } from "./errors.js";
import type { LuaModuleSpec } from "./types.js";

/** Everything a worker needs to load a workflow file the same way twice. */
export interface SessionSpec {
  /** Unique per loaded file: a worker keeps the Lua state it loaded under this id. */
  id: string;
  /** Absolute path of the workflow file. */
  file: string;
  /** Its source, already read (and with the `Modern DSLs` alias rewritten). */
  source: string;
  baseDir: string;
  values: Record<string, Value>;
  params: Record<string, Value>;
  modules: LuaModuleSpec[];
}

/**
 * The spec of a job: in full, or only its id when the worker already has it
 * (the pool knows which spec each worker saw last).
 */
export type SpecOrRef = SessionSpec | { id: string };

/** A job for a worker. */
export type JobRequest =
  | { type: "load"; id: number; spec: SpecOrRef }
  | {
      type: "call";
      id: number;
      spec: SpecOrRef;
      /** Where the load's extraction found the function (names, not positions). */
      fnKey: string;
      args: Value[];
      workdir: string;
      /** Set in the worker's environment for this call. */
      env: Record<string, string>;
    };

/** An error that ended a job, located in Lua source when possible. */
export interface JobError {
  code: DslErrorCode;
  reason: string;
  location?: SourceLocation | undefined;
}

/** What a Lua function call produced. */
export type CallResult =
  | { ok: true; values: Value[]; count: number }
  | { ok: false; reason: string; location?: SourceLocation | undefined };

/** Messages from a worker. */
export type JobMessage =
  | { type: "ready" }
  | { type: "log"; id: number; stream: "stdout" | "stderr" | "log"; text: string }
  | { type: "child"; id: number; pid: number; alive: boolean }
  | { type: "loaded"; id: number; raw: string }
  | { type: "called"; id: number; result: CallResult }
  | { type: "failed"; id: number; error: JobError };
