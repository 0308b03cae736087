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
  return createExclusions(root, options).excluded;
}

/**
 * {@link createExcluder}, with a key naming the rules it applies (the
 * options' and the ignore file's text, read once): equal keys, equal rules.
 */
export function createExclusions(
  root: string,
  options: ScanOptions = {},
): { excluded: Excluder; key: string } {
  const file = path.join(root, options.ignoreFile ?? ".slothignore");
  const rules = readRules(file);
  const key = JSON.stringify([
    options.includeGit === true,
    options.ignoreFile ?? ".slothignore",
    options.exclude ?? [],
    rules ?? null,
  ]);
  return { excluded: excluderOf(rules, options), key };
}

function excluderOf(rules: string | undefined, options: ScanOptions): Excluder {
  // The usual case, no rules but the default: a plain check instead of a
  // pattern match per path, which a scan would pay for every file.
  if (rules === undefined && (options.exclude ?? []).length === 0) {
    if (options.includeGit) return () => false;
    return (rel) =>
      rel === ".git" || rel.startsWith(".git/") || rel.endsWith("/.git") || rel.includes("/.git/");
  }
  const ig = ignore();
  if (!options.includeGit) ig.add(".git");
  if (options.exclude) ig.add(options.exclude);
  if (rules !== undefined) ig.add(rules);
  return (rel, isDir) => ig.ignores(isDir ? `${rel}/` : rel);
}

function readRules(file: string): string | undefined {
  try {
    return fs.lstatSync(file).isFile() ? fs.readFileSync(file, "utf8") : undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    return undefined;
  }
}
