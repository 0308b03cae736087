import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LuaModuleDefinition, LuaModuleHost } from "../types.js";

let tmpCounter = 0;

/**
 * `fs`: synchronous file operations on the real file system. They block only
 * the task's own worker. Relative paths resolve against the task's workdir.
 */
export function createFsModule(host: LuaModuleHost): LuaModuleDefinition {
  const p = (path: unknown): string => {
    if (typeof path !== "string" || path === "") throw new Error("fs: expected a path string");
    return host.resolvePath(path);
  };
  const functions = {
    read: (path: string) => wrap("read", path, () => fs.readFileSync(p(path), "utf8")),
    write: (path: string, content: string) =>
      wrap("write", path, () => {
        fs.writeFileSync(p(path), toText(content));
        return true;
      }),
    append: (path: string, content: string) =>
      wrap("append to", path, () => {
        fs.appendFileSync(p(path), toText(content));
        return true;
      }),
    exists: (path: string) => fs.existsSync(p(path)),
    is_dir: (path: string) =>
      fs.statSync(p(path), { throwIfNoEntry: false })?.isDirectory() ?? false,
    is_file: (path: string) => fs.statSync(p(path), { throwIfNoEntry: false })?.isFile() ?? false,
    size: (path: string) => wrap("stat", path, () => fs.statSync(p(path)).size),
    mkdir: (path: string) =>
      wrap("create directory", path, () => {
        fs.mkdirSync(p(path), { recursive: true });
        return true;
      }),
    rm: (path: string) =>
      wrap("remove", path, () => {
        fs.rmSync(p(path), { recursive: true, force: true });
        return true;
      }),
    ls: (path?: string) => wrap("list", path ?? ".", () => fs.readdirSync(p(path ?? ".")).sort()),
    copy: (from: string, to: string) =>
      wrap("copy", from, () => {
        fs.cpSync(p(from), p(to), { recursive: true });
        return true;
      }),
    rename: (from: string, to: string) =>
      wrap("rename", from, () => {
        fs.renameSync(p(from), p(to));
        return true;
      }),
    tmpdir: () => fs.mkdtempSync(join(tmpdir(), "sloth-")),
    tmpname: () => join(tmpdir(), `sloth-${process.pid}-${Date.now()}-${tmpCounter++}`),
    resolve: (path: string) => p(path),
  };
  return { functions };
}

function toText(content: unknown): string {
  if (typeof content === "string") return content;
  if (typeof content === "number" || typeof content === "boolean") return String(content);
  throw new Error(`fs: expected text content, got ${typeof content}`);
}

function wrap<T>(verb: string, path: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const reason = code === "ENOENT" ? "no such file or directory" : (e as Error).message;
    throw new Error(`cannot ${verb} '${path}': ${reason}`);
  }
}
