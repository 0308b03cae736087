import fs from "node:fs";
import path from "node:path";
import ignore from "ignore";
import type { ScanOptions } from "./types.js";

/** True when a workspace path is excluded; `isDir` lets "build/" patterns match. */
export type Excluder = (rel: string, isDir: boolean) => boolean;

/**
 * The exclusions of a workspace: `.git` unless asked for, the `exclude`
 * globs, and the root ignore file (gitignore syntax; only the root one is
 * read, so the rules are known before the walk starts).
 */
export function createExcluder(root: string, options: ScanOptions = {}): Excluder {
  const ig = ignore();
  if (!options.includeGit) ig.add(".git");
  if (options.exclude) ig.add(options.exclude);
  const file = path.join(root, options.ignoreFile ?? ".slothignore");
  try {
    if (fs.lstatSync(file).isFile()) ig.add(fs.readFileSync(file, "utf8"));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  return (rel, isDir) => ig.ignores(isDir ? `${rel}/` : rel);
}
