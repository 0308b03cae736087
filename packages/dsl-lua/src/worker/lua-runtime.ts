/**
 * The Lua side of the runtime: module wrappers (JavaScript errors become Lua
 * errors at the caller's line; promises are awaited so slow calls look
 * blocking), `print`/`log` into the task log, an `io` on the real file
 * system, `require`/`dofile` relative to the workflow file, Lua 5.1 shims.
 * Runs after the host has set `__sloth.host` and `__sloth.modules`.
 */
export const LUA_RUNTIME = String.raw`
local S = __sloth
local H = S.host

local function wrap(f)
  return function(...)
    local r = table.pack(pcall(f, ...))
    if not r[1] then error(tostring(r[2]), 2) end
    return table.unpack(r, 2, math.max(r.n, 2))
  end
end
-- Waiting yields the coroutine the host runs; inside a script's own
-- coroutine the yield would go to the script instead, so refuse there.
local function wrap_async(f)
  return function(...)
    if coroutine.running() ~= S.host_thread then
      error("slow calls (exec.run, time.sleep, http, ...) cannot run inside a coroutine of the script", 2)
    end
    local ok, p = pcall(f, ...)
    if not ok then error(tostring(p), 2) end
    local ok2, v = pcall(p.await, p)
    if not ok2 then error(tostring(v), 2) end
    return v
  end
end

for _, m in ipairs(S.modules) do
  local mod = rawget(_G, m.name) or {}
  local async = {}
  for _, name in ipairs(m.async or {}) do async[name] = true end
  for name, f in pairs(m.fns) do mod[name] = async[name] and wrap_async(f) or wrap(f) end
  if m.name:sub(1, 2) ~= "__" then
    _G[m.name] = mod
    -- A global only: require(name) still finds the workflow's own file of that name.
    if m.requireable ~= false then package.loaded[m.name] = mod end
  else
    S[m.name] = mod
  end
  if m.lua then assert(load(m.lua, "=" .. m.name))(mod) end
end

local function text_of(...)
  local parts = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    local mt = type(v) == "table" and getmetatable(v)
    if mt == nil or mt == S.INT_KEYS or mt == S.ARRAY then
      local ok, j = pcall(S.encode, v)
      parts[i] = ok and j or tostring(v)
    else
      parts[i] = tostring(v)
    end
  end
  return table.concat(parts, " ")
end

function print(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  H.log("stdout", table.concat(parts, "\t") .. "\n")
end

-- Lua's own warn() would write to the process's stderr.
function warn(first, ...)
  if select("#", ...) == 0 and type(first) == "string" and first:sub(1, 1) == "@" then return end
  local parts = { tostring(first) }
  for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
  H.log("stderr", "Lua warning: " .. table.concat(parts) .. "\n")
end

log = {}
for _, level in ipairs({ "debug", "info", "warn", "error" }) do
  -- One line per call: a message ending in a newline (exec.run output) gets no empty line after it.
  log[level] = function(...) H.log("log", level:upper() .. " " .. text_of(...):gsub("\r?\n$", "") .. "\n") end
end
log.warning = log.warn
package.loaded.log = log

local D = S.__data
-- Decoded lists stay lists when empty: [] goes back out as [] (S.arrays).
local function decoder(f)
  return function(...)
    local ok, v = pcall(f, ...)
    if not ok then error((tostring(v):gsub("^[^:]*:%d+: ", "")), 2) end
    S.arrays(v)
    return v
  end
end
json = {
  encode = function(v, opts)
    local ok, s = pcall(S.encode, v)
    if not ok then error("json.encode: " .. s, 2) end
    if type(opts) == "table" and opts.indent then return D.json_pretty(s, opts.indent) end
    return s
  end,
  decode = decoder(D.json_decode),
  -- Marks t (or a new table) as a list, so that it encodes as [] when empty.
  array = function(t)
    if t == nil then t = {} end
    if type(t) ~= "table" then error("json.array expects a table, got " .. type(t), 2) end
    local mt = getmetatable(t)
    if mt ~= nil and mt ~= S.ARRAY and mt ~= S.INT_KEYS then error("json.array expects a plain table", 2) end
    return setmetatable(t, S.ARRAY)
  end,
}
yaml = {
  encode = function(v)
    local ok, s = pcall(S.encode, v)
    if not ok then error("yaml.encode: " .. s, 2) end
    return D.yaml_from_json(s)
  end,
  decode = decoder(D.yaml_decode),
}
package.loaded.json, package.loaded.yaml = json, yaml
function template.render_file(path, vars) return template.render(fs.read(path), vars) end

-- io on the real file system. Reads take the whole file; writes are buffered
-- and appended on flush/close.
local File = {}
File.__index = File
local function fmt_of(f) return type(f) == "string" and f:gsub("^%*", "") or f end
function File:read(f)
  f = fmt_of(f or "l")
  if f == "a" then local s = self.buf:sub(self.pos); self.pos = #self.buf + 1; return s end
  if self.pos > #self.buf then return nil end
  if f == "l" or f == "L" then
    local nl = self.buf:find("\n", self.pos, true)
    local stop = nl or #self.buf
    local line = self.buf:sub(self.pos, (f == "L" or not nl) and stop or stop - 1)
    self.pos = stop + 1
    return line
  end
  if f == "n" then
    local s, e = self.buf:find("^%s*[-+]?%d*%.?%d+", self.pos)
    if not s then return nil end
    self.pos = e + 1
    return tonumber(self.buf:sub(s, e))
  end
  if type(f) == "number" then local s = self.buf:sub(self.pos, self.pos + f - 1); self.pos = self.pos + f; return s end
  error("file:read: unsupported format '" .. tostring(f) .. "'", 2)
end
function File:lines(f) return function() return self:read(f or "l") end end
function File:write(...)
  if not self.out then error("file not opened for writing: " .. self.path, 2) end
  for i = 1, select("#", ...) do self.out[#self.out + 1] = tostring((select(i, ...))) end
  return self
end
function File:flush()
  if self.out and #self.out > 0 then fs.append(self.path, table.concat(self.out)); self.out = {} end
  return self
end
function File:close() self:flush(); return true end
function File:seek() error("file:seek is not supported; use fs.read", 2) end

local real_io = io
io = {}
function io.open(path, mode)
  mode = mode or "r"
  local m = mode:sub(1, 1)
  if m == "r" then
    local ok, content = pcall(fs.read, path)
    if not ok then return nil, tostring(content), 2 end
    return setmetatable({ path = path, buf = content, pos = 1 }, File)
  elseif m == "w" or m == "a" then
    local ok, err = pcall(m == "w" and fs.write or fs.append, path, "")
    if not ok then return nil, tostring(err), 13 end
    return setmetatable({ path = path, out = {}, buf = "", pos = 1 }, File)
  end
  error("io.open: unsupported mode '" .. mode .. "'", 2)
end
function io.lines(path, f)
  if path == nil then error("io.lines() reads standard input, which tasks do not have", 2) end
  local file, err = io.open(path, "r")
  if not file then error(err, 2) end
  return file:lines(f)
end
function io.write(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  H.log("stdout", table.concat(parts))
  return io
end
function io.read() error("io.read: tasks have no standard input", 2) end
function io.popen() error("io.popen is not available: use exec.run(cmd)", 2) end
io.stdout = { write = function(self, ...) io.write(...); return self end }
io.stderr = { write = function(self, ...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  H.log("stderr", table.concat(parts))
  return self
end }
real_io = nil

os.getenv = function(name) return env.get(name) end
-- As in standard Lua: a file, or an empty directory; never a whole tree.
os.remove = function(path)
  if not fs.exists(path) then return nil, path .. ": No such file or directory", 2 end
  if fs.is_dir(path) and #fs.ls(path) > 0 then return nil, path .. ": Directory not empty", 39 end
  local ok, err = pcall(fs.rm, path)
  if not ok then return nil, tostring(err) end
  return true
end
os.rename = function(a, b)
  local ok, err = pcall(fs.rename, a, b)
  if not ok then return nil, tostring(err) end
  return true
end
os.tmpname = fs.tmpname
os.exit = function() error("os.exit is not allowed in a workflow; return false, 'message' from the task instead", 2) end
os.execute = function(cmd)
  if cmd == nil then return true end
  -- Its output goes to the task's log, as a shell's would go to the terminal.
  local r = exec.run(cmd, { stream = true })
  if r.success then return true, "exit", 0 end
  return nil, "exit", r.exit_code
end

-- require/dofile/loadfile resolve against the workflow file's directory.
-- Files read this way are noted: a run's record covers them with the workflow file.
S.loaded_files = {}
local function load_path(path)
  local full = path:sub(1, 1) == "/" and path or S.base_dir .. "/" .. path
  local ok, src = pcall(fs.read, full)
  if not ok then return nil, tostring(src), "read" end
  S.loaded_files[full] = true
  return load(src, "@" .. H.display_name(full))
end
-- A syntax error already names the loaded file and line; a read error does not.
local function level_of(how) return how == "read" and 2 or 0 end
function loadfile(path)
  return load_path(path)
end
function dofile(path)
  if path == nil then error("dofile() without a file reads standard input, which tasks do not have", 2) end
  local f, err, how = load_path(path)
  if not f then error(err, level_of(how)) end
  return f()
end
function require(name)
  if package.loaded[name] ~= nil then return package.loaded[name] end
  local rel = name:gsub("%.", "/")
  local tried = {}
  for _, pattern in ipairs({ "?.lua", "?/init.lua", "?.sloth" }) do
    local path = S.base_dir .. "/" .. pattern:gsub("%?", rel)
    tried[#tried + 1] = path
    if fs.is_file(path) then
      local f, err, how = load_path(path)
      if not f then error(err, level_of(how)) end
      local result = f(name, path)
      if result == nil then result = true end
      package.loaded[name] = result
      return result
    end
  end
  error("module '" .. name .. "' not found; tried " .. table.concat(tried, ", "), 2)
end

unpack = table.unpack
loadstring = load
table.getn = function(t) return #t end
math.pow = function(a, b) return a ^ b end
math.mod = math.fmod
string.gfind = string.gmatch
table.maxn = function(t)
  local max = 0
  for k in pairs(t) do
    if type(k) == "number" and k > max then max = k end
  end
  return max
end
`;
