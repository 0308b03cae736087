import { attach, pick, take } from "./kept.js";
import { scanTree } from "./scan.js";
import type { Changes, Manifest, ManifestEntry, ScanOptions } from "./types.js";

/** True when two entries are alike; modes count when `modes`. */
export function compareEntries(a: ManifestEntry, b: ManifestEntry, modes = true): boolean {
  if (a.type === "file" && b.type === "file")
    return a.hash === b.hash && (!modes || a.mode === b.mode);
  if (a.type === "dir" && b.type === "dir") return !modes || a.mode === b.mode;
  if (a.type === "symlink" && b.type === "symlink") return a.target === b.target;
  return false;
}

/**
 * What changed in `dir` since `base` was taken: added or modified entries
 * (content, mode, symlink target, type) and deleted paths, children before
 * their parents. Files whose size and mtime match the base are not read.
 * Pass the same exclusions as for the base scan. A task may well create a
 * symlink leaving the tree (a virtualenv's `bin/python`): unless
 * `outsideSymlinks` is "error", such links, sockets and fifos are left out
 * and listed in `skipped`. With `keepContent`, the bytes of the small
 * changed files it read are kept for packChanges.
 */
export async function diffWorkspace(
  dir: string,
  base: Manifest,
  options: ScanOptions = {},
): Promise<Changes> {
  const others: string[] = [];
  const now = await scanTree(
    dir,
    { outsideSymlinks: "skip", ...options, reuse: base },
    options.outsideSymlinks === "error" ? undefined : { others },
  );
  const changes = compareManifests(base, now);
  if (others.length > 0) changes.skipped = others;
  // Only the changed files' bytes stay kept, for packChanges.
  const kept = take(now);
  if (kept) {
    const changed = new Set(changes.changed.map((e) => e.path));
    for (const p of [...kept.files.keys()]) if (!changed.has(p)) pick(kept, p);
    attach(changes, kept);
  }
  return changes;
}

/** The changes that turn `base` into `next`. */
export function compareManifests(base: Manifest, next: Manifest): Changes {
  const before = new Map<string, ManifestEntry>();
  for (const e of base.entries) before.set(e.path, e);
  const changed: ManifestEntry[] = [];
  const present = new Set<string>();
  for (const e of next.entries) {
    present.add(e.path);
    const b = before.get(e.path);
    if (b === undefined || !compareEntries(b, e)) changed.push(e);
  }
  const deleted: string[] = [];
  for (const e of base.entries) if (!present.has(e.path)) deleted.push(e.path);
  // Manifests list parents first; deleting goes the other way.
  deleted.sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
  return { changed, deleted };
}
