import { parseDuration } from "../convert/duration.js";
import type { LuaModuleDefinition } from "../types.js";
import { toLua } from "../worker/to-lua.js";

/** `http.request({ url, method, headers, body, timeout })` as Lua passes it. */
interface HttpRequest {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  /** A string is sent as is; a table is sent as JSON. */
  body?: unknown;
  timeout?: number | string;
}

/** What http functions return to Lua. */
interface HttpResponse {
  status: number;
  ok: boolean;
  body: string;
  headers: Record<string, string>;
  /** The parsed body when it is JSON. */
  json?: unknown;
}

/** `http`: get, post and request through fetch; a network failure is a Lua error. */
// Table bodies are encoded by Lua, as json.encode does (lists stay lists,
// even empty ones); a JSON response's empty lists stay lists (S.arrays).
const HTTP_LUA = `
local http = ...
local S = __sloth
local function with_json(headers)
  local h = {}
  for k, v in pairs(headers or {}) do h[k] = v end
  for k in pairs(h) do
    if type(k) == "string" and k:lower() == "content-type" then return h end
  end
  h["content-type"] = "application/json"
  return h
end
local function encoded(body)
  local ok, s = pcall(S.encode, body)
  if not ok then error("http: cannot encode the body: " .. s, 3) end
  return s
end
local function call(f, ...)
  local ok, r = pcall(f, ...)
  if not ok then error((tostring(r):gsub("^[^:]*:%d+: ", "")), 3) end
  if type(r) == "table" then S.arrays(r.json) end
  return r
end
local request, get, post = http.request, http.get, http.post
-- Not tail calls: error levels count the frames between here and the caller.
function http.request(req)
  if type(req) == "table" and type(req.body) == "table" then
    local copy = {}
    for k, v in pairs(req) do copy[k] = v end
    copy.body = encoded(req.body)
    copy.headers = with_json(req.headers)
    req = copy
  end
  local r = call(request, req)
  return r
end
function http.get(...)
  local r = call(get, ...)
  return r
end
function http.post(url, body, opts)
  local r
  if type(body) == "table" then
    local o = {}
    for k, v in pairs(type(opts) == "table" and opts or {}) do o[k] = v end
    o.headers = with_json(o.headers)
    r = call(post, url, encoded(body), o)
  else
    r = call(post, url, body, opts)
  end
  return r
end
`;

export function createHttpModule(): LuaModuleDefinition {
  const request = async (req: HttpRequest): Promise<HttpResponse> => {
    if (!req || typeof req.url !== "string") throw new Error("http.request expects { url = ... }");
    const headers: Record<string, string> = { ...(req.headers ?? {}) };
    let body: string | undefined;
    if (typeof req.body === "string") body = req.body;
    else if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers["content-type"] ??= "application/json";
    }
    const timeoutMs = parseDuration(req.timeout ?? 30, "s");
    let res: Response;
    try {
      res = await fetch(req.url, {
        method: (req.method ?? (body === undefined ? "GET" : "POST")).toUpperCase(),
        headers,
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      const cause = (e as { cause?: { message?: string } }).cause?.message;
      throw new Error(`cannot reach ${req.url}: ${cause ?? (e as Error).message}`);
    }
    const text = await res.text();
    const out: HttpResponse = {
      status: res.status,
      ok: res.ok,
      body: text,
      headers: Object.fromEntries(res.headers.entries()),
    };
    if ((res.headers.get("content-type") ?? "").includes("json")) {
      try {
        out.json = toLua(JSON.parse(text));
      } catch {
        // Not JSON after all: the body is still there.
      }
    }
    return out;
  };
  const functions = {
    request,
    get: (url: string, opts?: Omit<HttpRequest, "url">) => request({ ...opts, url, method: "GET" }),
    post: (url: string, body?: unknown, opts?: Omit<HttpRequest, "url">) =>
      request({ ...opts, url, body, method: "POST" }),
  };
  return { functions, async: ["request", "get", "post"], lua: HTTP_LUA };
}

/** `time`: now (seconds, fractional), now_ms, iso, sleep(seconds or "2s"). */
export function createTimeModule(): LuaModuleDefinition {
  const functions = {
    now: () => Date.now() / 1000,
    now_ms: () => Date.now(),
    iso: () => new Date().toISOString(),
    sleep: (d: number | string) => {
      if (typeof d !== "number" && typeof d !== "string")
        throw new Error('time.sleep expects seconds or a duration such as "500ms"');
      return new Promise<boolean>((resolve) =>
        setTimeout(() => resolve(true), parseDuration(d, "s")),
      );
    },
  };
  return { functions, async: ["sleep"] };
}

/** `env`: get(name[, default]), set, unset, all. Changes stay in the task's worker. */
export function createEnvModule(): LuaModuleDefinition {
  const functions = {
    get: (name: string, fallback?: string) => process.env[name] ?? fallback,
    set: (name: string, value: string | number | boolean) => {
      checkName(name, "env.set");
      if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean")
        throw new Error(
          `env.set: the value of '${name}' must be a string or a number, got ${value === undefined || value === null ? "nil" : typeof value} (use env.unset to remove it)`,
        );
      process.env[name] = String(value);
      return true;
    },
    unset: (name: string) => {
      checkName(name, "env.unset");
      delete process.env[name];
      return true;
    },
    all: () => ({ ...process.env }),
  };
  return { functions };
}

function checkName(name: unknown, fn: string): void {
  if (typeof name !== "string" || name === "" || /[=\0]/.test(name))
    throw new Error(
      `${fn}: expected a variable name without '=', got ${JSON.stringify(name ?? null)}`,
    );
}
