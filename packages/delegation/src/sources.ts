import fs from "node:fs";
import path from "node:path";

/** A workflow source file shipped to agents. */
export interface SourceFile {
  path: string;
  content: Uint8Array;
}

const SKIP = new Set([".git", "node_modules", ".sloth", "dist"]);
const LUA = /\.(sloth|lua)$/;

/**
 * The workflow file and the Lua files next to it (and below it), which it may
 * `require` or `dofile`: what an agent needs to load the workflow. Paths are
 * relative to the workflow's folder. At most `maxBytes` in all.
 */
export function collectSources(
  workflowFile: string,
  maxBytes = 8 * 1024 * 1024,
): { root: string; files: SourceFile[] } {
  const root = path.dirname(path.resolve(workflowFile));
  const files: SourceFile[] = [];
  let total = 0;
  const add = (abs: string) => {
    const content = fs.readFileSync(abs);
    total += content.length;
    if (total > maxBytes) return false;
    files.push({ path: path.relative(root, abs).split(path.sep).join("/"), content });
    return true;
  };
  add(path.resolve(workflowFile));
  const walk = (dir: string, depth: number) => {
    if (depth > 6) return;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const abs = path.join(dir, e.name);
      if (e.isDirectory() && !SKIP.has(e.name)) walk(abs, depth + 1);
      else if (e.isFile() && LUA.test(e.name) && abs !== path.resolve(workflowFile)) {
        if (!add(abs)) return;
      }
    }
  };
  walk(root, 0);
  return { root, files };
}
