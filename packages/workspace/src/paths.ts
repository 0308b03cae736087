// Validation of paths, modes and symlink targets coming from the other side,
// and directory creation that never follows a symlink. Both directions use
// these: the runner distrusts the agent's archives and the agent the runner's.
import fs from "node:fs";
import path from "node:path";
import { unsafe, WorkspaceError } from "./errors.js";

const MAX_PATH = 4096;

/** Checks a relative POSIX entry path; returns it. Throws SLOTH_ARCHIVE_UNSAFE naming it. */
export function checkPath(p: unknown): string {
  if (typeof p !== "string" || p.length === 0) throw unsafe(String(p), "empty path");
  if (p.length > MAX_PATH) throw unsafe(p.slice(0, 200), "path too long");
  if (p.includes("\0")) throw unsafe(p, "path contains a NUL byte");
  if (p.charCodeAt(0) === 0x2f) throw unsafe(p, "absolute path");
  // One pass over the characters: a manifest holds tens of thousands of paths.
  let segStart = 0;
  for (let i = 0; i <= p.length; i++) {
    if (i < p.length && p.charCodeAt(i) !== 0x2f) continue;
    const len = i - segStart;
    if (len === 0) throw unsafe(p, "path is not normalised");
    if (p.charCodeAt(segStart) === 0x2e && len <= 2) {
      if (len === 1) throw unsafe(p, "path is not normalised");
      if (p.charCodeAt(segStart + 1) === 0x2e) throw unsafe(p, "path contains '..'");
    }
    segStart = i + 1;
  }
  return p;
}

/**
 * Checks a symlink target: relative, normalised, with `..` only as leading
 * segments and no more of them than the link's depth. With every link of the
 * tree obeying this, no chain of links resolves outside it, because a `..`
 * never follows a link (a lexical check of `a/../b` would be fooled when `a`
 * is itself a link).
 */
export function checkSymlinkTarget(linkPath: string, target: unknown): string {
  if (typeof target !== "string" || target.length === 0)
    throw unsafe(linkPath, "symlink without a target");
  if (target.includes("\0")) throw unsafe(linkPath, "symlink target contains a NUL byte");
  if (target.startsWith("/")) throw unsafe(linkPath, `symlink to an absolute path (${target})`);
  if (path.posix.normalize(target) !== target || target.endsWith("/"))
    throw unsafe(linkPath, `symlink target ${JSON.stringify(target)} is not normalised`);
  const segs = target.split("/");
  let up = 0;
  while (segs[up] === "..") up++;
  const depth = linkPath.split("/").length - 1;
  if (up > depth) throw unsafe(linkPath, `symlink points outside the tree (${target})`);
  return target;
}

/** A symlink target as read from disk, normalised; undefined when it leaves the tree. */
export function normaliseTarget(linkPath: string, raw: string): string | undefined {
  if (raw.startsWith("/")) return undefined;
  let t = path.posix.normalize(raw);
  while (t.length > 1 && t.endsWith("/")) t = t.slice(0, -1);
  try {
    return checkSymlinkTarget(linkPath, t);
  } catch {
    return undefined;
  }
}

/** Checks permission bits; setuid, setgid and sticky bits never travel. */
export function checkMode(entry: string, mode: unknown): number {
  if (typeof mode !== "number" || !Number.isInteger(mode) || mode < 0)
    throw new WorkspaceError("SLOTH_INVALID_ARGUMENT", `cannot accept entry ${entry}: bad mode`, {
      details: { entry },
    });
  return mode & 0o777;
}

/** The parent directories of a relative path, outermost first: "a/b/c" → ["a", "a/b"]. */
function parents(rel: string): string[] {
  const out: string[] = [];
  let i = rel.indexOf("/");
  while (i !== -1) {
    out.push(rel.slice(0, i));
    i = rel.indexOf("/", i + 1);
  }
  return out;
}

/**
 * A target directory written without ever following a symlink: every parent
 * of an entry is checked with lstat (and remembered, so a deep tree costs one
 * lstat per directory, not per file).
 */
export class SafeTree {
  private readonly known = new Set<string>();
  /** Directories created here, so their final modes can be set afterwards. */
  readonly created: string[] = [];

  private readonly prefix: string;

  constructor(readonly root: string) {
    this.prefix = root.endsWith("/") ? root : `${root}/`;
  }

  /** The absolute path of an entry (checked, so joining is concatenation). */
  abs(rel: string): string {
    return this.prefix + rel;
  }

  /**
   * Makes sure every parent of `rel` is a real directory inside the root,
   * creating missing ones when `create`; false when one is missing and not
   * created. A symlink or a file as a parent throws, naming the entry.
   */
  parents(rel: string, create: boolean): boolean {
    // A known parent was checked after all of its own parents.
    const slash = rel.lastIndexOf("/");
    if (slash === -1 || this.known.has(rel.slice(0, slash))) return true;
    for (const dir of parents(rel)) {
      if (this.known.has(dir)) continue;
      const st = lstatOrUndefined(this.abs(dir));
      if (st === undefined) {
        if (!create) return false;
        fs.mkdirSync(this.abs(dir), { mode: 0o755 });
        this.created.push(dir);
      } else if (st.isSymbolicLink()) {
        throw unsafe(rel, `parent ${JSON.stringify(dir)} is a symlink`);
      } else if (!st.isDirectory()) {
        throw unsafe(rel, `parent ${JSON.stringify(dir)} is not a directory`);
      }
      this.known.add(dir);
    }
    return true;
  }

  /** Marks `rel` as a directory known to be real (just created or checked). */
  remember(rel: string): void {
    this.known.add(rel);
  }

  /** Forgets checked directories after something was replaced or removed. */
  forget(): void {
    this.known.clear();
  }
}

/** lstat that returns undefined for a missing path. */
export function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}
