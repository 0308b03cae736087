import type { Value } from "@sloth/workflow";
import { DslError, formatLocated } from "../errors.js";

/** A Lua function as the encoder hands it over. */
export interface FnRef {
  $fn: number;
  /** Its path in the declarations, by task names: stable across reloads. */
  key: string;
  line: number;
}

/** Where declarations come from, for error messages. */
export interface ConvertScope {
  /** The file as messages show it. */
  file: string;
  lines: string[];
}

/** True for an encoded Lua function. */
export function isFnRef(v: unknown): v is FnRef {
  return typeof v === "object" && v !== null && typeof (v as FnRef).$fn === "number";
}

/** True for a plain Lua table (not a function, task or parallel group). */
export function isTable(v: unknown): v is Record<string, unknown> | unknown[] {
  if (typeof v !== "object" || v === null) return false;
  if (Array.isArray(v)) return true;
  return !Object.keys(v).some((k) => k.startsWith("$"));
}

/** An invalid-declaration error at `line` of the file. */
export function invalid(scope: ConvertScope, line: number | undefined, reason: string): DslError {
  const location =
    line !== undefined && line > 0
      ? { file: scope.file, line, sourceLine: scope.lines[line - 1]?.trim() }
      : undefined;
  return new DslError("SLOTH_DSL_INVALID", formatLocated(reason, location), { location });
}

/** The Lua type name of an encoded value. */
export function luaType(v: unknown): string {
  if (v === null || v === undefined) return "nil";
  if (isFnRef(v)) return "function";
  if (typeof v === "object") return "table";
  return typeof v;
}

/** A list: a Lua sequence, an empty table, or one string when `single` allows it. */
export function listOf(v: unknown, single: boolean): unknown[] | undefined {
  if (Array.isArray(v)) return v;
  if (single && typeof v === "string") return [v];
  if (isTable(v) && Object.keys(v).length === 0) return [];
  return undefined;
}

/** Checks that an encoded value is plain data (no functions or task objects). */
export function plainValue(v: unknown, path: string): Value {
  if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean")
    return v;
  if (Array.isArray(v)) return v.map((x, i) => plainValue(x, `${path}[${i + 1}]`));
  if (isTable(v)) {
    const out: Record<string, Value> = {};
    for (const [k, x] of Object.entries(v)) out[k] = plainValue(x, `${path}.${k}`);
    return out;
  }
  throw new Error(
    `${path} must be plain data, got a ${luaType(v) === "table" ? "task object" : luaType(v)}`,
  );
}
