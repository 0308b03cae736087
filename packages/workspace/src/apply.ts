import fs from "node:fs";
import path from "node:path";
import { unsafe, WorkspaceError } from "./errors.js";
import { createExcluder } from "./exclude.js";
import { hashFile } from "./hash.js";
import { checkPath, checkSymlinkTarget, lstatOrUndefined, SafeTree } from "./paths.js";
import { type ReadOptions, readTar, type TarHeader } from "./tar-read.js";
import type { Manifest, ScanOptions } from "./types.js";

/** Options of {@link applyChanges}. */
export interface ApplyOptions
  extends ReadOptions,
    Pick<ScanOptions, "exclude" | "ignoreFile" | "includeGit"> {
  /**
   * The manifest that was sent: deletions of paths it does not list are
   * refused (the agent never saw them). Strongly recommended.
   */
  base?: Manifest;
  /**
   * A path changed here since `base` was taken (by the user, or by another
   * task delivering its changes first), when the incoming change differs
   * from what is here now: "keep" (default with `base`) leaves it as it is
   * here, applies everything else, then fails with SLOTH_WORKSPACE_CONFLICT
   * naming such paths; "overwrite" applies the incoming change anyway.
   */
  conflicts?: "keep" | "overwrite";
  /**
   * Entries and deletions under excluded paths: "skip" (default) drops them
   * (counted in `skipped`), "error" refuses the archive naming the entry.
   */
  excluded?: "skip" | "error";
}

const O_CREATE_NEW =
  fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/**
 * Runner side: applies a {@link packChanges} archive and a deleted list to
 * `targetDir`, never writing or deleting outside it or through a symlink,
 * and never touching excluded paths (`.git` by default: a hostile agent
 * must not plant hooks; a task's `node_modules` stays on the agent when excluded). Entries are applied as they arrive: a rejected
 * archive leaves the entries before the bad one applied.
 */
export async function applyChanges(
  targetDir: string,
  stream: AsyncIterable<Uint8Array>,
  deleted: string[],
  options: ApplyOptions = {},
): Promise<{ written: number; deleted: number; skipped: number }> {
  const root = path.resolve(targetDir);
  if (!fs.statSync(root).isDirectory())
    throw new WorkspaceError(
      "SLOTH_INVALID_ARGUMENT",
      `cannot apply to ${targetDir}: not a directory`,
    );
  const excluded = createExcluder(root, options);
  const sent = options.base ? new Set(options.base.entries.map((e) => e.path)) : undefined;
  const baseEntries = options.base
    ? new Map(options.base.entries.map((e) => [e.path, e]))
    : undefined;
  const guard = baseEntries !== undefined && options.conflicts !== "overwrite";
  const conflicts: string[] = [];
  /** True when `rel` is here as it was sent (or still absent, when it was not sent). */
  const asSent = (rel: string, here?: fs.Stats | null): boolean => {
    const st = here === undefined ? lstatOrUndefined(tree.abs(rel)) : (here ?? undefined);
    const b = baseEntries?.get(rel);
    if (b === undefined) return st === undefined;
    if (st === undefined) return false;
    if (b.type === "dir") return st.isDirectory();
    if (b.type === "symlink")
      return st.isSymbolicLink() && fs.readlinkSync(tree.abs(rel)) === b.target;
    if (!st.isFile() || st.size !== b.size) return false;
    if (b.mtimeMs !== undefined && Math.round(st.mtimeMs) === b.mtimeMs) return true;
    return hashFile(tree.abs(rel), st.size).hash === b.hash;
  };
  let skipped = 0;
  // An excluded path is none of the sender's business: dropped, or refused.
  const check = (p: unknown, isDir: boolean): string | undefined => {
    const rel = checkPath(p);
    if (!excluded(rel, isDir)) return rel;
    if (options.excluded === "error") throw unsafe(rel, "excluded path");
    skipped++;
    return undefined;
  };
  if (!Array.isArray(deleted)) throw unsafe(String(deleted), "deleted list is not an array");
  // Everything is validated before the first deletion.
  const deletions: string[] = [];
  for (const p of deleted) {
    const rel = check(p, false);
    if (rel === undefined) continue;
    if (sent && !sent.has(rel)) throw unsafe(rel, "deletion of a path that was not sent");
    deletions.push(rel);
  }
  const tree = new SafeTree(root);
  let removed = 0;
  for (const rel of deletions) {
    // Already gone here is no conflict; changed here since it was sent is.
    if (guard && tree.parents(rel, false) && lstatOrUndefined(tree.abs(rel)) !== undefined) {
      if (!lstatOrUndefined(tree.abs(rel))?.isDirectory() && !asSent(rel)) {
        conflicts.push(rel);
        continue;
      }
    }
    if (remove(tree, rel)) removed++;
  }
  const dirs: { abs: string; mode: number }[] = [];
  let written = 0;
  let seq = 0;
  await readTar(stream, options, (h: TarHeader) => {
    if (h.type === "directory") {
      const rel = check(h.name.endsWith("/") ? h.name.slice(0, -1) : h.name, true);
      if (rel === undefined) return undefined;
      tree.parents(rel, true);
      const abs = tree.abs(rel);
      const st = lstatOrUndefined(abs);
      if (st === undefined || !st.isDirectory()) {
        if (st !== undefined) clear(tree, rel);
        fs.mkdirSync(abs, { mode: 0o700 });
      }
      tree.remember(rel);
      dirs.push({ abs, mode: h.mode & 0o777 });
      written++;
      return undefined;
    }
    const rel = check(h.name, false);
    if (rel === undefined) return undefined;
    if (h.type === "symlink") {
      const target = checkSymlinkTarget(rel, h.linkname);
      tree.parents(rel, true);
      if (guard && !asSent(rel)) {
        const st = lstatOrUndefined(tree.abs(rel));
        if (!(st?.isSymbolicLink() && fs.readlinkSync(tree.abs(rel)) === target))
          conflicts.push(rel);
        return undefined;
      }
      clear(tree, rel);
      fs.symlinkSync(target, tree.abs(rel));
      written++;
      return undefined;
    }
    if (h.type === "link") throw unsafe(rel, "hard links are not accepted");
    if (h.type !== "file") throw unsafe(rel, `${h.type} entries are not accepted`);
    tree.parents(rel, true);
    // A new file is created in place; an existing one is written beside its
    // target and renamed over it, so it stays whole if the archive breaks and
    // an inode shared with a file elsewhere (a hard link) is replaced, never
    // written into.
    const abs = tree.abs(rel);
    const here = lstatOrUndefined(abs) ?? null;
    // Changed here meanwhile: written aside, kept only if it is what is here already.
    const contested = guard && !asSent(rel, here);
    const fresh = !contested && here === null;
    const tmp = fresh ? abs : `${abs}.sloth-${process.pid}-${++seq}.tmp`;
    let fd: number | undefined = fs.openSync(tmp, O_CREATE_NEW, 0o600);
    const close = () => {
      if (fd !== undefined) fs.closeSync(fd);
      fd = undefined;
    };
    return {
      write(chunk) {
        let off = 0;
        while (off < chunk.length) off += fs.writeSync(fd as number, chunk, off);
      },
      end() {
        fs.fchmodSync(fd as number, h.mode & 0o777);
        close();
        if (contested) {
          const here = lstatOrUndefined(abs);
          const same =
            here?.isFile() === true &&
            here.size === h.size &&
            hashFile(abs, here.size).hash === hashFile(tmp, h.size).hash;
          fs.rmSync(tmp, { force: true });
          if (!same) conflicts.push(rel);
          return;
        }
        if (!fresh) {
          if (lstatOrUndefined(abs)?.isDirectory()) clear(tree, rel);
          fs.renameSync(tmp, abs);
        }
        written++;
      },
      abort() {
        close();
        fs.rmSync(tmp, { force: true });
      },
    };
  });
  // A later entry may have replaced a directory by a symlink: chmod would follow it.
  for (const d of dirs.reverse())
    if (lstatOrUndefined(d.abs)?.isDirectory()) fs.chmodSync(d.abs, d.mode);
  if (conflicts.length > 0) {
    const shown = conflicts.slice(0, 5).map((p) => JSON.stringify(p));
    const more = conflicts.length > 5 ? ` and ${conflicts.length - 5} more` : "";
    throw new WorkspaceError(
      "SLOTH_WORKSPACE_CONFLICT",
      `cannot apply the changes to ${conflicts.length} path(s) that changed here while the task ran: ${shown.join(", ")}${more} (kept as they are here; the rest was applied)`,
      {
        details: { entries: conflicts, written, deleted: removed },
        hint: "do not let tasks that change the same files run at the same time (depends_on), or edit them elsewhere",
      },
    );
  }
  return { written, deleted: removed, skipped };
}

/** Deletes one entry (a directory only when empty); false when it was not there. */
function remove(tree: SafeTree, rel: string): boolean {
  if (!tree.parents(rel, false)) return false;
  const abs = tree.abs(rel);
  const st = lstatOrUndefined(abs);
  if (st === undefined) return false;
  if (!st.isDirectory()) {
    fs.unlinkSync(abs);
    return true;
  }
  try {
    fs.rmdirSync(abs);
    tree.forget();
    return true;
  } catch (e) {
    // It holds files the sender never saw (excluded ones): keep them.
    if ((e as NodeJS.ErrnoException).code === "ENOTEMPTY") return false;
    throw e;
  }
}

/** Makes room for a new entry at `rel`; a non-empty directory in the way is a conflict. */
function clear(tree: SafeTree, rel: string): void {
  const abs = tree.abs(rel);
  const st = lstatOrUndefined(abs);
  if (st === undefined) return;
  if (!st.isDirectory()) {
    fs.unlinkSync(abs);
    return;
  }
  try {
    fs.rmdirSync(abs);
    tree.forget();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOTEMPTY") throw e;
    throw new WorkspaceError(
      "SLOTH_WORKSPACE_CONFLICT",
      `cannot replace directory ${JSON.stringify(rel)}: it holds files that were not sent`,
      { cause: e, details: { entry: rel } },
    );
  }
}
