// Three ways wasmoon's value conversion loses or corrupts data, mended at
// the one place every value crosses (LuaThread's pushValue and getValue):
//
// - Nested tables: each level takes stack slots, and Lua only guarantees 20
//   (LUA_MINSTACK); wasmoon never asks for more, so about 20 levels of
//   nesting wrote past the stack ("memory access out of bounds"). Room is
//   now reserved with lua_checkstack before each table is filled.
// - Integers beyond 2^53: JavaScript holds them only approximately, and
//   wasmoon pushed them as Lua integers through BigInt, so 2^63 and above
//   wrapped around to negative numbers. They are pushed as floats.
// - Strings holding NUL bytes: wasmoon passes strings as C strings both
//   ways, cutting them at the first NUL. Such strings are pushed, and all
//   strings read, with their byte length.
import { LuaThread, LuaType } from "wasmoon";

type Module = LuaThread["lua"]["module"] & {
  _malloc(size: number): number;
  _free(ptr: number): void;
  HEAPU8: Uint8Array;
};

// One size_t per module for lua_tolstring's length output.
const lengthSlots = new WeakMap<object, number>();

function lengthSlot(module: Module): number {
  let slot = lengthSlots.get(module);
  if (slot === undefined) {
    slot = module._malloc(8);
    lengthSlots.set(module, slot);
  }
  return slot;
}

function isPlainObject(v: unknown): boolean {
  if (typeof v !== "object" || v === null) return false;
  if (Array.isArray(v)) return true;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

type Push = (this: LuaThread, value: unknown, userdata?: unknown) => void;
type Get = (this: LuaThread, index: number, type?: LuaType, userdata?: unknown) => unknown;

let installed = false;

/** Installs the corrections (once per worker). */
export function installValueConversions(): void {
  if (installed) return;
  installed = true;
  const proto = LuaThread.prototype as unknown as { pushValue: Push; getValue: Get };
  const push = proto.pushValue;
  const get = proto.getValue;

  proto.pushValue = function (value, userdata) {
    if (typeof value === "number") {
      if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
        this.lua.lua_pushnumber(this.address, value);
        return;
      }
    } else if (typeof value === "string") {
      if (value.includes("\0")) {
        pushBytes(this, value);
        return;
      }
    } else if (isPlainObject(value)) {
      // The table, a key and a value at each level of nesting.
      if (!this.lua.lua_checkstack(this.address, 4))
        throw new Error("cannot pass the value to Lua: it is nested too deeply");
    }
    push.call(this, value, userdata);
  };

  proto.getValue = function (index, type, userdata) {
    const t = type ?? this.lua.lua_type(this.address, index);
    if (t === LuaType.String) return readBytes(this, index);
    return get.call(this, index, type, userdata);
  };
}

function pushBytes(thread: LuaThread, text: string): void {
  const module = thread.lua.module as Module;
  const bytes = Buffer.from(text, "utf8");
  const ptr = module._malloc(bytes.length + 1);
  try {
    module.HEAPU8.set(bytes, ptr);
    module.ccall(
      "lua_pushlstring",
      "number",
      ["number", "number", "number"],
      [thread.address, ptr, bytes.length],
    );
  } finally {
    module._free(ptr);
  }
}

function readBytes(thread: LuaThread, index: number): string {
  const module = thread.lua.module as Module;
  const slot = lengthSlot(module);
  const ptr = module.ccall(
    "lua_tolstring",
    "number",
    ["number", "number", "number"],
    [thread.address, index, slot],
  ) as number;
  if (ptr === 0) return "";
  const length = module.getValue(slot, "i32") >>> 0;
  return Buffer.from(module.HEAPU8.subarray(ptr, ptr + length)).toString("utf8");
}
