// The Lua `stack` module of workflow runs (`sloth-runner run STACK -f FILE`),
// loaded by @sloth/dsl-lua inside its Lua workers: `stack.name`,
// `stack.state()`, `stack.resource{...}`, `stack.remove_resource(name)`,
// `stack.resources()`, `stack.snapshot(description)`, `stack.event(message)`.
import { StackError } from "./errors.js";
import type { StackStore } from "./store.js";
import type { Json, ResourceSpec } from "./types.js";

/** Options of the Lua module: the stacks database and the stack the run deploys. */
export interface StackLuaOptions {
  path?: string | undefined;
  /** Absent when the run deploys no stack: the functions then say how to run one. */
  stack?: string | undefined;
  /** Recorded as the source of changes and events. */
  source?: string | undefined;
  /** The run's lock on the stack: the module's changes are made under it. */
  lockId?: string | undefined;
  /**
   * Secret values to mask (as `***`) in the event messages and snapshot
   * descriptions the module records. Resources are stored as given: their
   * commands run again later (`stack drift`).
   */
  mask?: string[] | undefined;
}

/** Replaces each value of 4 characters or more (longest first) by `***`. */
function masker(values: string[] | undefined): (text: string) => string {
  const list = [...new Set(values ?? [])]
    .filter((v) => typeof v === "string" && v.length >= 4)
    .sort((a, b) => b.length - a.length);
  return (text) => {
    let out = text;
    for (const v of list) if (out.includes(v)) out = out.split(v).join("***");
    return out;
  };
}

/** Drops nulls (Lua has no null) and copies. */
function plain(value: unknown): unknown {
  if (value === null || value === undefined) return undefined;
  if (Array.isArray(value)) return value.map(plain);
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>))
      if (v !== null && v !== undefined) out[k] = plain(v);
    return out;
  }
  return value;
}

/** A Lua list arrives as an array, or (empty, or through JSON) as an object. */
function list(value: unknown, what: string): string[] {
  if (value === undefined || value === null) return [];
  const items = Array.isArray(value)
    ? value
    : typeof value === "object"
      ? Object.values(value as Record<string, unknown>)
      : undefined;
  if (items === undefined || items.some((x) => typeof x !== "string"))
    throw new StackError("SLOTH_INVALID_ARGUMENT", `${what} must be a list of names`);
  return items as string[];
}

const LUA = `
local stack = ...
stack.name = stack.__name()
local function rethrow(ok, ...)
  if ok then return ... end
  error((tostring((...)):gsub("^[^:]*:%d+: ", "")), 3)
end
function stack.resource(spec)
  if type(spec) ~= "table" then
    error("stack.resource expects a table such as { name = 'web', type = 'service', desired = { port = 80 }, check = 'cmd' }", 2)
  end
  return rethrow(pcall(stack.__resource, __sloth.encode(spec)))
end
`;

/** The module's definition, as @sloth/dsl-lua loads it. */
export function createLuaModule(options: StackLuaOptions = {}) {
  let store: StackStore | undefined;
  // The database (better-sqlite3, drizzle) is loaded on first use only: every
  // Lua worker of every run loads this module.
  const need = async (): Promise<{ store: StackStore; name: string }> => {
    if (!options.stack || !options.path)
      throw new StackError(
        "SLOTH_INVALID_ARGUMENT",
        "this run deploys no stack: run it as `sloth-runner run STACK -f FILE` to use the stack module",
      );
    if (store === undefined) {
      const { openStackStore } = await import("./store.js");
      store = openStackStore({ path: options.path });
    }
    return { store, name: options.stack };
  };
  const source = options.source;
  const lockId = options.lockId;
  const mask = masker(options.mask);
  /**
   * Changes are made by the run's tasks, under the lock the run holds: not by
   * the file's top level (which runs when the file is loaded, before the
   * lock, and also for --dry-run), nor once the run has let the lock go.
   */
  const changing = async (what: string) => {
    const s = await need();
    if (s.store.find(s.name)?.lock?.lockId !== lockId || lockId === undefined)
      throw new StackError(
        "SLOTH_INVALID_ARGUMENT",
        `${what} changes stack '${s.name}': call it from a task, not from the file's top level (the stack is locked for the run only once its tasks start)`,
      );
    return s;
  };
  const functions = {
    __name: () => options.stack,
    state: async () => {
      const { store, name } = await need();
      // A stack's first run: nothing deployed yet.
      return plain(store.find(name)?.state ?? {});
    },
    __resource: async (json: string) => {
      const { store, name } = await changing("stack.resource");
      const spec = JSON.parse(json) as Record<string, unknown>;
      const known = ["name", "type", "desired", "check", "fix", "depends_on", "dependsOn"];
      const unknown = Object.keys(spec).filter((k) => !known.includes(k));
      if (unknown.length > 0)
        throw new StackError(
          "SLOTH_INVALID_ARGUMENT",
          `stack.resource: unknown field ${JSON.stringify(unknown[0])}; the fields are name, type, desired, check, fix, depends_on`,
        );
      const r: ResourceSpec = {
        name: spec.name as string,
        type: spec.type as string,
        desired: (spec.desired ?? null) as Json,
        ...(spec.check !== undefined ? { check: spec.check as string } : {}),
        ...(spec.fix !== undefined ? { fix: spec.fix as string } : {}),
        dependsOn: list(spec.depends_on ?? spec.dependsOn, "depends_on"),
      };
      store.setResource(name, r, { source, lockId });
      return true;
    },
    remove_resource: async (resource: string) => {
      const { store, name } = await changing("stack.remove_resource");
      store.removeResource(name, resource, { source, lockId });
      return true;
    },
    resources: async () => {
      const { store, name } = await need();
      if (!store.find(name)) return [];
      return plain(
        store.resources(name).map((r) => ({
          name: r.name,
          type: r.type,
          desired: r.desired,
          check: r.check,
          fix: r.fix,
          depends_on: r.dependsOn,
          drift: r.drift?.status,
        })),
      );
    },
    snapshot: async (description?: unknown) => {
      if (description !== undefined && description !== null && typeof description !== "string")
        throw new StackError(
          "SLOTH_INVALID_ARGUMENT",
          "stack.snapshot expects a description (a string) or nothing",
        );
      const { store, name } = await changing("stack.snapshot");
      return store.snapshot(name, {
        ...(typeof description === "string" ? { description: mask(description) } : {}),
        source,
        lockId,
      }).name;
    },
    event: async (message: unknown, severity?: string) => {
      if (typeof message !== "string" && typeof message !== "number")
        throw new StackError("SLOTH_INVALID_ARGUMENT", "stack.event expects a message (a string)");
      const { store, name } = await changing("stack.event");
      if (
        severity !== undefined &&
        severity !== null &&
        !["info", "warning", "error"].includes(severity)
      )
        throw new StackError(
          "SLOTH_INVALID_ARGUMENT",
          `stack.event: severity ${JSON.stringify(severity)} is not one of "info", "warning", "error"`,
        );
      const level = severity === "warning" || severity === "error" ? severity : "info";
      store.addEvent(name, {
        type: "workflow.event",
        severity: level,
        message: mask(String(message)),
        source,
      });
      return true;
    },
  };
  return {
    functions,
    // A global only: a workflow's own stack.lua stays require-able.
    requireable: false,
    async: Object.keys(functions).filter((k) => k !== "__name"),
    lua: LUA,
    dispose: () => {
      store?.close();
      store = undefined;
    },
  };
}
