import YAML from "yaml";
import type { LuaModuleDefinition } from "../types.js";
import { toLua } from "../worker/to-lua.js";

/**
 * `json` and `yaml`. Lua encodes tables to JSON itself (correct arrays, no
 * slow conversion); these functions parse, pretty-print and translate.
 */
export function createDataModule(): LuaModuleDefinition {
  const functions = {
    json_decode: (text: string) => {
      if (typeof text !== "string")
        throw new Error(`json.decode expects a JSON string, got ${luaTypeOf(text)}`);
      try {
        return toLua(JSON.parse(text));
      } catch (e) {
        throw new Error(`json.decode: ${(e as Error).message}`);
      }
    },
    json_pretty: (json: string, indent: number) => JSON.stringify(JSON.parse(json), null, indent),
    yaml_from_json: (json: string) => YAML.stringify(JSON.parse(json)),
    yaml_decode: (text: string) => {
      if (typeof text !== "string")
        throw new Error(`yaml.decode expects a YAML string, got ${luaTypeOf(text)}`);
      try {
        return toLua(YAML.parse(text));
      } catch (e) {
        throw new Error(`yaml.decode: ${(e as Error).message}`);
      }
    },
  };
  return { functions };
}

/**
 * `template.render(text, vars)`: replaces `{{ name }}` and `{{ a.b }}`.
 * An unknown variable is an error rather than an empty string, so typos fail
 * loudly. Tables render as JSON.
 */
export function renderTemplate(text: string, vars: unknown): string {
  if (typeof text !== "string") throw new Error("template.render expects a template string");
  const scope = vars ?? {};
  return text.replace(
    /\{\{\s*([A-Za-z_][\w]*(?:\.[A-Za-z_\d][\w]*)*)\s*\}\}/g,
    (_, name: string) => {
      let v: unknown = scope;
      for (const part of name.split(".")) {
        // Lua lists count from 1: {{ hosts.1 }} is the first.
        const key = Array.isArray(v) && /^\d+$/.test(part) ? String(Number(part) - 1) : part;
        // Own keys only: {{ constructor }} is not a variable.
        if (v === null || typeof v !== "object" || !Object.hasOwn(v, key)) {
          throw new Error(`template: unknown variable '${name}'`);
        }
        v = (v as Record<string, unknown>)[key];
      }
      if (v === undefined || v === null) throw new Error(`template: unknown variable '${name}'`);
      return typeof v === "object" ? JSON.stringify(v) : String(v);
    },
  );
}

function luaTypeOf(v: unknown): string {
  if (v === undefined || v === null) return "nil";
  if (typeof v === "object") return "table";
  return typeof v;
}
