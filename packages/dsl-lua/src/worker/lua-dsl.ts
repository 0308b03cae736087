/**
 * The Lua side of the DSL: the `task(...)`, `workflow.define(...)` and
 * `parallel(...)` builders, and the encoder that hands declarations to
 * JavaScript as one JSON string (wasmoon's own table conversion is about 30×
 * slower). Builder data lives in a side table, never on the objects, so a
 * field can never hide a method.
 */
export const LUA_DSL = String.raw`
local S = __sloth
local DATA = setmetatable({}, { __mode = "k" })
local TASK_META, WF_META, PAR_META = {}, {}, {}
-- JSON has only string keys: a table that came through it with keys such as
-- "3" or "8080" (a Lua integer key, or a YAML number key) also answers to
-- t[3] and t[8080]; pairs() still shows the string keys. Such tables count
-- as plain tables everywhere (printing, lists).
local INT_KEYS = { __index = function(t, k)
  if math.type(k) == "integer" then return rawget(t, tostring(k)) end
end }
S.INT_KEYS = INT_KEYS
-- A list known to be one even when empty (JSON's [], or json.array(t)):
-- encoded as [] when it has no items. A plain table too.
local ARRAY = {}
S.ARRAY = ARRAY
local function plain(t) local mt = getmetatable(t) return mt == nil or mt == INT_KEYS or mt == ARRAY end
S.workflows = {}
S.fns = {}
-- Tasks the top level created, to tell about those no workflow lists.
S.created = {}

local function names_of(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return table.concat(out, ", ")
end

local function caller_line(level)
  local info = debug.getinfo(level + 1, "l")
  return info and info.currentline or 0
end

local function check(value, field, ...)
  local t = type(value)
  for i = 1, select("#", ...) do
    local want = select(i, ...)
    if t == want or (want == "task" and getmetatable(value) == TASK_META) then return end
  end
  error(string.format("%s expects %s, got %s", field, table.concat({ ... }, " or "), t), 3)
end

-- Flattens varargs or one list into a list, checking element types.
local function list_of(field, allow_tasks, ...)
  local first = ...
  local items = (select("#", ...) == 1 and type(first) == "table" and plain(first)) and first or { ... }
  local out = {}
  for i, v in ipairs(items) do
    if type(v) == "string" then out[#out + 1] = v
    elseif allow_tasks and getmetatable(v) == TASK_META then out[#out + 1] = DATA[v].name
    else error(string.format("%s expects names%s, got %s at position %d", field, allow_tasks and " or tasks" or "", type(v), i), 3) end
  end
  return out
end

local TASK_METHODS = {}
local TASK_ALIASES = { pre_exec = "pre_hook", post_exec = "post_hook", on_fail = "on_failure" }
local function task_setter(field, ...)
  local kinds = { ... }
  TASK_METHODS[field] = function(self, value)
    check(value, ":" .. field .. "()", table.unpack(kinds))
    DATA[self][field] = value
    return self
  end
end
task_setter("description", "string")
task_setter("command", "function", "string")
task_setter("retry_delay", "number", "string")
task_setter("timeout", "number", "string")
task_setter("delegate_to", "string", "table")
task_setter("workdir", "string")
task_setter("params", "table")
task_setter("workspace", "table")
task_setter("run_if", "function", "string", "boolean")
task_setter("abort_if", "function", "string", "boolean")
for _, hook in ipairs({ "pre_hook", "post_hook", "on_success", "on_failure", "on_timeout" }) do
  task_setter(hook, "function")
end
function TASK_METHODS.depends_on(self, ...)
  local d = DATA[self]
  d.depends_on = d.depends_on or {}
  for _, name in ipairs(list_of(":depends_on()", true, ...)) do d.depends_on[#d.depends_on + 1] = name end
  return self
end
function TASK_METHODS.retries(self, n, strategy)
  check(n, ":retries()", "number")
  if strategy ~= nil then check(strategy, ":retries() strategy", "string") end
  DATA[self].retries = n
  DATA[self].retry_strategy = strategy
  return self
end
for _, field in ipairs({ "tags", "artifacts", "consumes" }) do
  TASK_METHODS[field] = function(self, ...)
    local d = DATA[self]
    d[field] = d[field] or {}
    for _, v in ipairs(list_of(":" .. field .. "()", false, ...)) do d[field][#d[field] + 1] = v end
    return self
  end
end
function TASK_METHODS.build(self) return self end
local TASK_METHOD_LIST = names_of(TASK_METHODS) .. " (aliases: " .. names_of(TASK_ALIASES) .. ")"

TASK_META.__index = function(self, key)
  local m = TASK_METHODS[TASK_ALIASES[key] or key]
  if m then return m end
  if key == "name" then return DATA[self].name end
  error(string.format("unknown task method '%s' on task '%s'; valid methods: %s", tostring(key), DATA[self].name, TASK_METHOD_LIST), 2)
end
TASK_META.__newindex = function(self, key)
  error(string.format("cannot set '%s' on task '%s': use its methods", tostring(key), DATA[self].name), 2)
end
TASK_META.__tostring = function(self) return "task(" .. DATA[self].name .. ")" end

function task(name)
  if type(name) ~= "string" or name == "" then error("task() expects a non-empty name", 2) end
  local obj = setmetatable({}, TASK_META)
  DATA[obj] = { name = name, __line = caller_line(2) }
  if S.loading then S.created[#S.created + 1] = { name, DATA[obj].__line } end
  return obj
end

local WF_METHODS = {}
local function wf_setter(field, ...)
  local kinds = { ... }
  WF_METHODS[field] = function(self, value)
    check(value, ":" .. field .. "()", table.unpack(kinds))
    DATA[self][field] = value
    return self
  end
end
wf_setter("description", "string")
wf_setter("version", "string", "number")
wf_setter("tasks", "table")
wf_setter("config", "table")
for _, hook in ipairs({ "on_start", "on_task_start", "on_task_complete", "on_complete" }) do
  wf_setter(hook, "function")
end
local WF_METHOD_LIST = names_of(WF_METHODS)
WF_META.__index = function(self, key)
  local m = WF_METHODS[key]
  if m then return m end
  if key == "name" then return DATA[self].name end
  error(string.format("unknown workflow method '%s' on workflow '%s'; valid methods: %s", tostring(key), DATA[self].name, WF_METHOD_LIST), 2)
end
WF_META.__newindex = function(self, key)
  error(string.format("cannot set '%s' on workflow '%s': use its methods", tostring(key), DATA[self].name), 2)
end

workflow = {}
function workflow.define(name, spec)
  if type(name) ~= "string" or name == "" then error("workflow.define() expects a non-empty name", 2) end
  if spec ~= nil and type(spec) ~= "table" then error("workflow.define() expects a table as its second argument, got " .. type(spec), 2) end
  local obj = setmetatable({}, WF_META)
  DATA[obj] = { name = name, __line = caller_line(2), __spec = spec }
  S.workflows[#S.workflows + 1] = obj
  return obj
end

function parallel(list)
  if type(list) ~= "table" then error("parallel() expects a list of tasks, got " .. type(list), 2) end
  local obj = setmetatable({}, PAR_META)
  DATA[obj] = { tasks = list, __line = caller_line(2) }
  return obj
end
PAR_META.__index = function(_, key) error("parallel groups have no method '" .. tostring(key) .. "'", 2) end

-- JSON encoding. Keys are sorted so that functions get the same ids each time
-- the file is loaded (pairs order changes with Lua's per-state hash seed).
local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function enc_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return ESC[c] or string.format("\\u%04x", c:byte()) end) .. '"'
end
local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local TAGS = { [TASK_META] = "$task", [WF_META] = "$workflow", [PAR_META] = "$parallel" }

-- A list item's path names the task when it is one, so that a function's
-- path stays the same when a reload builds a list in another order.
local function item_path(path, item, i)
  local name
  if type(item) == "table" then
    local mt = getmetatable(item)
    if mt == TASK_META or mt == WF_META then name = DATA[item].name
    elseif mt == nil or mt == INT_KEYS or mt == ARRAY then name = rawget(item, "name") end
  end
  if type(name) == "string" then return path .. "[" .. name .. "]" end
  return path .. "[" .. i .. "]"
end

local function encode(v, opts, seen, path)
  local t = type(v)
  -- Indexing (for calls) only needs the functions' paths, not the JSON.
  if opts.index and t ~= "function" and t ~= "table" then return "" end
  if t == "nil" then return "null"
  elseif t == "boolean" then return tostring(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if math.type(v) == "integer" then return string.format("%d", v) end
    return string.format("%.17g", v)
  elseif t == "string" then return enc_string(v)
  elseif t == "function" then
    if not opts.fns then error("cannot encode a function at " .. path, 0) end
    local id = #S.fns + 1
    S.fns[id] = v
    local key = path
    local n = 1
    while S.fn_keys[key] do n = n + 1; key = path .. "#" .. n end
    S.fn_keys[key] = v
    return '{"$fn":' .. id .. ',"key":' .. enc_string(key) .. ',"line":' .. (debug.getinfo(v, "S").linedefined or 0) .. "}"
  elseif t ~= "table" then
    error("cannot encode a " .. t .. " at " .. path, 0)
  end
  local tag = TAGS[getmetatable(v)]
  if tag then
    if not opts.fns then error("cannot encode a task or workflow object at " .. path, 0) end
    return '{"' .. tag .. '":' .. encode(DATA[v], opts, seen, path) .. "}"
  end
  if seen[v] then error("cannot encode a table that contains itself at " .. path, 0) end
  seen[v] = true
  if next(v) == nil and getmetatable(v) == ARRAY then
    seen[v] = nil
    return "[]"
  end
  local keys, max, seq, strings = {}, 0, true, true
  for k in pairs(v) do
    keys[#keys + 1] = k
    if math.type(k) == "integer" and k > 0 then
      if k > max then max = k end
    else
      seq = false
    end
    if type(k) ~= "string" then strings = false end
  end
  local out = {}
  if #keys > 0 and seq and max == #keys then
    for i = 1, max do out[i] = encode(v[i], opts, seen, item_path(path, v[i], i)) end
    seen[v] = nil
    return "[" .. table.concat(out, ",") .. "]"
  end
  -- The plain string sort is much faster than one with a comparator.
  if strings then table.sort(keys) else table.sort(keys, key_less) end
  for _, k in ipairs(keys) do
    local kt = type(k)
    if kt ~= "string" and kt ~= "number" and kt ~= "boolean" then error("cannot encode a " .. kt .. " key at " .. path, 0) end
    local sub = kt == "number" and item_path(path, v[k], k) or path .. "." .. tostring(k)
    out[#out + 1] = enc_string(tostring(k)) .. ":" .. encode(v[k], opts, seen, sub)
  end
  seen[v] = nil
  return "{" .. table.concat(out, ",") .. "}"
end
S.encode = function(v) return encode(v, {}, {}, "value") end

-- Everything the file declared, as JSON; functions become
-- {"$fn": id, "key": path}; calls find them again by path.
function S.extract()
  S.fns = {}
  S.fn_keys = {}
  local opts = { fns = true }
  local defs = rawget(_G, "TaskDefinitions")
  local wfs = {}
  for i, w in ipairs(S.workflows) do wfs[i] = encode(DATA[w], opts, {}, "workflow '" .. DATA[w].name .. "'") end
  local head = defs ~= nil and encode(defs, opts, {}, "TaskDefinitions") or "null"
  local files = {}
  for f in pairs(S.loaded_files or {}) do files[#files + 1] = enc_string(f) end
  table.sort(files)
  local created = {}
  for i, c in ipairs(S.created) do created[i] = "[" .. enc_string(c[1]) .. "," .. c[2] .. "]" end
  return '{"defs":' .. head .. ',"workflows":[' .. table.concat(wfs, ",") .. '],"files":[' .. table.concat(files, ",") .. '],"created":[' .. table.concat(created, ",") .. "]}"
end

-- Registers every function under the same path as extract() would, without
-- building the JSON: what a call needs to find its function again.
function S.index()
  S.fns = {}
  S.fn_keys = {}
  local opts = { fns = true, index = true }
  local defs = rawget(_G, "TaskDefinitions")
  for _, w in ipairs(S.workflows) do encode(DATA[w], opts, {}, "workflow '" .. DATA[w].name .. "'") end
  if defs ~= nil then encode(defs, opts, {}, "TaskDefinitions") end
  return "ok"
end

local function where(level)
  for l = level, level + 20 do
    local info = debug.getinfo(l, "Sl")
    if not info then return nil end
    if info.source:sub(1, 1) == "@" and info.currentline and info.currentline > 0 then
      return info.short_src .. ":" .. info.currentline
    end
  end
end
local function on_error(e)
  local msg = type(e) == "string" and e or tostring(e)
  if type(e) == "table" then
    local ok, j = pcall(S.encode, e)
    if ok then msg = j end
  end
  return { message = msg, where = where(2) }
end

local function failure(e)
  -- A failing handler (out of memory) hands over a string, not our table.
  if type(e) ~= "table" then e = { message = tostring(e) } end
  return '{"error":' .. enc_string(e.message) .. ',"where":' .. (e.where and enc_string(e.where) or "null") .. "}"
end

-- Runs the workflow file; returns JSON {"ok": true}, {"syntax": true, "error": ...} or {"error": ...}.
function S.run_main(src, name)
  S.host_thread = coroutine.running()
  local f, err = load(src, "@" .. name)
  if not f then return '{"syntax":true,"error":' .. enc_string(err) .. "}" end
  S.loading = true
  local ok, e = xpcall(f, on_error)
  S.loading = false
  if not ok then return failure(e) end
  -- The globals as the top level left them: every call starts from these.
  S.globals = {}
  for k, v in next, _G do S.globals[k] = v end
  return '{"ok":true}'
end

-- The upvalues a call can change: those of the function and, transitively,
-- of the functions it can reach through them (its helpers), except _ENV.
local getupvalue, setupvalue = debug.getupvalue, debug.setupvalue
local function cells_of(f)
  local cells, seen = {}, {}
  local function walk(fn)
    if seen[fn] then return end
    seen[fn] = true
    local i = 1
    while true do
      local name, v = getupvalue(fn, i)
      if name == nil then break end
      if name ~= "_ENV" then
        cells[#cells + 1] = { fn, i }
        if type(v) == "function" then walk(v) end
      end
      i = i + 1
    end
  end
  walk(f)
  return cells
end
S.cells = setmetatable({}, { __mode = "k" })

-- Puts back the globals and the captured top-level locals a call changed, so
-- the next call in this Lua state starts where the top level left off.
local function roll_back(cells, saved)
  for i = #cells, 1, -1 do
    local c = cells[i]
    setupvalue(c[1], c[2], saved[i])
  end
  local G, snap = _G, S.globals
  if snap == nil then return end
  for k in next, G do
    if snap[k] == nil then rawset(G, k, nil) end
  end
  for k, v in next, snap do
    if rawget(G, k) ~= v then rawset(G, k, v) end
  end
end

local function int_key(k)
  if type(k) ~= "string" or not k:match("^%-?%d+$") then return false end
  local n = math.tointeger(tonumber(k))
  return n ~= nil and tostring(n) == k
end
-- The table an empty JSON array became on its way in (see to-lua.ts).
local EMPTY_ARRAY_KEY = S.empty_array_key
local function empty_array(t)
  local k, x = next(t)
  return k == EMPTY_ARRAY_KEY and x == true and next(t, k) == nil
end
-- Walks a value that came through JSON: empty arrays become empty lists
-- marked as such; with ints, tables with integer-like keys get INT_KEYS.
-- Lua calls between Lua functions take no C stack: deep data is fine.
local function walk(v, depth, ints)
  if type(v) ~= "table" or depth > 100000 then return end
  if empty_array(v) then
    v[EMPTY_ARRAY_KEY] = nil
    if getmetatable(v) == nil then setmetatable(v, ARRAY) end
    return
  end
  local has = false
  for k, x in next, v do
    if ints and not has and int_key(k) then has = true end
    if type(x) == "table" then walk(x, depth + 1, ints) end
  end
  if has and getmetatable(v) == nil then setmetatable(v, INT_KEYS) end
end
local function int_keys(v, depth) walk(v, depth, true) end
S.int_keys = function(v) walk(v, 0, true) end
S.arrays = function(v) walk(v, 0, false) end
int_keys(values, 0)
int_keys(params, 0)

-- Calls the function at path key with n args; returns JSON {"n": count, "r": [...]} or {"error": ...}.
function S.call(key, args, n)
  for i = 1, n do int_keys(args[i], 0) end
  S.host_thread = coroutine.running()
  local f = S.fn_keys[key]
  if f == nil then
    return failure({ message = "cannot find the function at " .. key .. " when loading the file again; keep the top level deterministic" })
  end
  local cells = S.cells[f]
  if cells == nil then
    cells = cells_of(f)
    S.cells[f] = cells
  end
  local saved = {}
  for i, c in ipairs(cells) do
    local _, v = getupvalue(c[1], c[2])
    saved[i] = v
  end
  local res = table.pack(xpcall(f, on_error, table.unpack(args, 1, n)))
  local reply
  if not res[1] then
    reply = failure(res[2])
  else
    local out = {}
    for i = 2, res.n do
      local ok, j = pcall(encode, res[i], {}, {}, "return value " .. (i - 1))
      if not ok then
        reply = '{"error":' .. enc_string(j) .. ',"where":null}'
        break
      end
      out[#out + 1] = j
    end
    reply = reply or '{"n":' .. (res.n - 1) .. ',"r":[' .. table.concat(out, ",") .. "]}"
  end
  roll_back(cells, saved)
  return reply
end
`;
