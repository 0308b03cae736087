import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { SourceFile } from "./types.js";

/**
 * sha256 (hex) of a workflow file's bytes, recorded with each run so that
 * `run --resume` can tell when the file changed. The files it read when it
 * loaded are covered by {@link hashSources}.
 */
export function hashFile(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/**
 * The files a workflow read besides its own, with their hashes: paths
 * relative to the workflow file's directory when inside it (so a moved
 * project still matches), else absolute. Throws when one cannot be read.
 */
export function hashSources(workflowFile: string, files: readonly string[]): SourceFile[] {
  const base = path.dirname(path.resolve(workflowFile));
  return files.map((f) => {
    const abs = path.resolve(base, f);
    const rel = path.relative(base, abs);
    const inside = rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel);
    return { path: inside ? rel : abs, hash: hashFile(abs) };
  });
}

/**
 * The recorded sources (see {@link hashSources}) that differ now, for a
 * workflow file at `workflowFile` (perhaps moved since): each with why.
 */
export function changedSources(
  workflowFile: string,
  sources: readonly SourceFile[],
): Array<{ path: string; reason: "changed" | "missing" }> {
  const base = path.dirname(path.resolve(workflowFile));
  const out: Array<{ path: string; reason: "changed" | "missing" }> = [];
  for (const s of sources) {
    let hash: string | undefined;
    try {
      hash = hashFile(path.resolve(base, s.path));
    } catch {
      out.push({ path: s.path, reason: "missing" });
      continue;
    }
    if (hash !== s.hash) out.push({ path: s.path, reason: "changed" });
  }
  return out;
}
