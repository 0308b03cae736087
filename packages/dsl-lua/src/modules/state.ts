import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { threadId } from "node:worker_threads";
import {
  connectState,
  isStateError,
  type JsonValue,
  type Lease,
  openState,
  type StateStore,
} from "@sloth/state";
import type { LuaModuleDefinition, StateTarget } from "../types.js";
import { toLua } from "../worker/to-lua.js";

/** Options of the `state` module: a state database file, or a master serving one. */
export type StateModuleOptions = StateTarget;

// Lua numbers are seconds; strings are durations ("30s") and pass through.
const ttlOf = (v: unknown): number | string | undefined =>
  v === undefined || v === null ? undefined : typeof v === "number" ? v * 1000 : String(v);

const LUA = `
local state = ...
-- Values are encoded by Lua, as json.encode does (lists stay lists, even
-- empty ones), and decoded on the other side.
local set_json, cas_json = state.__set_json, state.__cas_json
state.__set_json, state.__cas_json = nil, nil
local function json_of(v, fn)
  if v == nil then return nil end
  local ok, s = pcall(__sloth.encode, v)
  if not ok then error(fn .. ": cannot store " .. s, 3) end
  return s
end
local function rethrow(ok, r)
  if not ok then error((tostring(r):gsub("^[^:]*:%d+: ", "")), 3) end
  return r
end
function state.set(key, value, ttl)
  local r = rethrow(pcall(set_json, key, json_of(value, "state.set"), ttl))
  return r
end
function state.cas(key, expected, new, ttl)
  local r = rethrow(pcall(cas_json, key, json_of(expected, "state.cas"), json_of(new, "state.cas"), ttl))
  return r
end
state.compare_swap = state.cas
-- Tables stored as JSON answer to their integer keys again (see S.int_keys).
local get = state.get
function state.get(...)
  local ok, v = pcall(get, ...)
  if not ok then error((tostring(v):gsub("^[^:]*:%d+: ", "")), 2) end
  __sloth.int_keys(v)
  return v
end
-- Runs fn holding the lock; the lock is released even when fn fails.
function state.with_lock(name, fn, timeout)
  if type(fn) ~= "function" then error("state.with_lock expects a function", 2) end
  if not state.lock(name, timeout) then error("cannot take lock '" .. tostring(name) .. "': it is held elsewhere", 2) end
  local r = table.pack(pcall(fn))
  state.unlock(name)
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end
`;

/** A value Lua encoded (undefined for nil). */
const fromJson = (json: string | undefined | null): JsonValue | undefined =>
  json === undefined || json === null ? undefined : (JSON.parse(json) as JsonValue);

/**
 * The Lua `state` module over @sloth/state: get (with a default), set (ttl in
 * seconds or "30s"), delete, exists, keys(prefix), increment, cas /
 * compare_swap, lock(name, wait), try_lock(name, ttl), unlock, with_lock.
 * Locks still held when the task ends are released.
 */
export function createLuaModule(options: StateModuleOptions): LuaModuleDefinition {
  let store: Promise<StateStore> | undefined;
  // Opened on first use and kept for the worker's later jobs; a failed open is retried.
  const open = () => {
    if (!store) {
      const opening = "master" in options ? connectState(options) : openState(options);
      store = opening;
      opening.catch(() => {
        if (store === opening) store = undefined;
      });
    }
    return store;
  };
  const owner = `lua/${hostname()}/${process.pid}/${threadId}/${randomUUID()}`;
  const leases = new Map<string, Lease>();
  const take = async (
    name: string,
    lock: { waitMs: number | string; ttl?: number | string | undefined },
  ): Promise<boolean> => {
    try {
      const lease = await (await open()).lock(name, {
        owner,
        autoRenew: true,
        ttl: lock.ttl,
        waitMs: lock.waitMs,
      });
      leases.set(name, lease);
      return true;
    } catch (e) {
      if (isStateError(e, "SLOTH_LOCK_HELD")) return false;
      throw e;
    }
  };
  const functions = {
    get: async (key: string, fallback?: unknown) => {
      const v = await (await open()).get(key);
      return v === undefined ? fallback : toLua(v);
    },
    __set_json: async (key: string, json: string | undefined, ttl?: number | string) => {
      await (await open()).set(key, fromJson(json) as JsonValue, { ttl: ttlOf(ttl) });
      return true;
    },
    delete: async (key: string) => (await open()).delete(key),
    exists: async (key: string) => (await open()).has(key),
    keys: async (prefix?: string) => (await (await open()).list({ prefix })).map((e) => e.key),
    increment: async (key: string, by?: number) => (await open()).increment(key, by ?? 1),
    __cas_json: async (
      key: string,
      expected: string | undefined,
      next: string | undefined,
      ttl?: number | string,
    ) =>
      (
        await (
          await open()
        ).cas(key, fromJson(expected), fromJson(next), {
          ttl: ttlOf(ttl),
        })
      ).ok,
    lock: (name: string, wait?: number | string) => take(name, { waitMs: ttlOf(wait) ?? 30_000 }),
    try_lock: (name: string, ttl?: number | string) => take(name, { waitMs: 0, ttl: ttlOf(ttl) }),
    unlock: async (name: string) => {
      const lease = leases.get(name);
      if (!lease) return false;
      leases.delete(name);
      await lease.release();
      return true;
    },
  };
  return {
    functions,
    async: Object.keys(functions),
    lua: LUA,
    close: async () => {
      for (const lease of leases.values()) await lease.release().catch(() => undefined);
      leases.clear();
    },
    dispose: async () => {
      const open = store;
      store = undefined;
      if (open) await (await open).close();
    },
  };
}
