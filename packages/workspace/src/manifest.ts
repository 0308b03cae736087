import { unsafe, WorkspaceError } from "./errors.js";
import { checkMode, checkPath, checkSymlinkTarget } from "./paths.js";
import type { DirEntry, FileEntry, Manifest, ManifestEntry, SymlinkEntry } from "./types.js";

const HASH = /^[0-9a-f]{64}$/;

/** True when `s` is a lowercase sha256 hex digest. */
export function isHash(s: unknown): s is string {
  return typeof s === "string" && HASH.test(s);
}

/**
 * Checks a manifest from the other side before anything is written: paths,
 * unique entries, modes, sizes, hashes, symlink targets, and that no entry
 * sits under a file or a symlink. Returns the entries.
 */
export function checkManifest(m: Manifest): ManifestEntry[] {
  if (typeof m !== "object" || m === null || !Array.isArray(m.entries))
    throw new WorkspaceError("SLOTH_INVALID_ARGUMENT", "cannot use the manifest: no entries list");
  const types = new Map<string, ManifestEntry["type"]>();
  for (const e of m.entries) {
    const p = checkPath(e?.path);
    if (types.has(p)) throw unsafe(p, "listed twice");
    switch (e.type) {
      case "dir":
        checkMode(p, e.mode);
        break;
      case "file":
        checkMode(p, e.mode);
        if (!Number.isSafeInteger(e.size) || e.size < 0) throw unsafe(p, "bad size");
        if (!isHash(e.hash)) throw unsafe(p, "bad hash");
        break;
      case "symlink":
        checkSymlinkTarget(p, e.target);
        break;
      default:
        throw unsafe(p, `unknown entry type ${JSON.stringify((e as { type: unknown }).type)}`);
    }
    types.set(p, e.type);
  }
  for (const e of m.entries) {
    // Nearest parent first; a listed directory's own parents are checked on its turn.
    for (let i = e.path.lastIndexOf("/"); i > 0; i = e.path.lastIndexOf("/", i - 1)) {
      const parent = e.path.slice(0, i);
      const t = types.get(parent);
      if (t === "dir") break;
      if (t !== undefined) throw unsafe(e.path, `parent ${parent} is a ${t}`);
    }
  }
  return m.entries;
}

/** The first file of the manifest holding each hash. */
export function filesByHash(m: Manifest): Map<string, FileEntry> {
  const out = new Map<string, FileEntry>();
  for (const e of m.entries) if (e.type === "file" && !out.has(e.hash)) out.set(e.hash, e);
  return out;
}

/**
 * True when two manifests list the same entries with the same attributes,
 * in the same order (as two scans of an unchanged tree do): what one of them
 * serialises to names the other.
 */
export function sameManifest(a: Manifest, b: Manifest): boolean {
  if (a.totalBytes !== b.totalBytes || a.entries.length !== b.entries.length) return false;
  for (let i = 0; i < a.entries.length; i++) {
    const x = a.entries[i] as ManifestEntry;
    const y = b.entries[i] as ManifestEntry;
    if (x.path !== y.path || x.type !== y.type) return false;
    if (x.type === "file") {
      const f = y as FileEntry;
      if (x.hash !== f.hash || x.size !== f.size || x.mode !== f.mode || x.mtimeMs !== f.mtimeMs)
        return false;
    } else if (x.type === "dir") {
      if (x.mode !== (y as DirEntry).mode) return false;
    } else if (x.target !== (y as SymlinkEntry).target) return false;
  }
  return true;
}
