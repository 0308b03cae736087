import path from "node:path";
import { WorkspaceError } from "./errors.js";
import { free, pick, take } from "./kept.js";
import { filesByHash } from "./manifest.js";
import { checkPath } from "./paths.js";
import { FileChanged, type PackOptions, type PackWriter, writeTar } from "./tar-write.js";
import type { Changes, FileEntry, Manifest } from "./types.js";

export type { PackOptions } from "./tar-write.js";

/**
 * Runner side: a tar stream of the content of the files with the given
 * hashes, each blob once, named by its hash. Files are read synchronously;
 * a file that changed size since the scan fails with SLOTH_WORKSPACE_CHANGED.
 * Content the scan kept (`keepContent`) is sent as it was hashed, unread.
 */
export function packBlobs(
  dir: string,
  manifest: Manifest,
  hashes: Iterable<string>,
  options: PackOptions = {},
): AsyncIterable<Uint8Array> {
  const root = path.resolve(dir);
  const byHash = filesByHash(manifest);
  return writeTar(async (w) => {
    const kept = take(manifest);
    try {
      await packEach(w, root, byHash, hashes, kept);
    } finally {
      free(kept);
    }
  }, options);
}

async function packEach(
  w: PackWriter,
  root: string,
  byHash: Map<string, FileEntry>,
  hashes: Iterable<string>,
  kept: ReturnType<typeof take>,
): Promise<void> {
  const sent = new Set<string>();
  for (const hash of hashes) {
    if (sent.has(hash)) continue;
    sent.add(hash);
    const e = byHash.get(hash);
    if (e === undefined)
      throw new WorkspaceError(
        "SLOTH_BLOB_MISSING",
        `cannot pack blob ${hash}: no file of the manifest has it`,
        { details: { hash } },
      );
    const data = pick(kept, e.path);
    if (data !== undefined && data.length === e.size) await w.data(hash, data, 0o644);
    else await packFile(w, root, hash, e, 0o644);
  }
}

/**
 * Packs the changed entries of `dir` (files with content, directories,
 * symlinks) as a tar stream, in the order given (parents first).
 */
export function packChanges(
  dir: string,
  changes: Changes,
  options: PackOptions = {},
): AsyncIterable<Uint8Array> {
  const root = path.resolve(dir);
  return writeTar(async (w) => {
    const kept = take(changes);
    try {
      for (const e of changes.changed) {
        const name = checkPath(e.path);
        if (e.type === "dir") await w.meta({ name, type: "directory", mode: e.mode });
        else if (e.type === "symlink")
          await w.meta({ name, type: "symlink", mode: 0o777, linkname: e.target });
        else {
          const data = pick(kept, e.path);
          if (data !== undefined && data.length === e.size) await w.data(name, data, e.mode);
          else await packFile(w, root, name, e, e.mode);
        }
      }
    } finally {
      free(kept);
    }
  }, options);
}

async function packFile(w: PackWriter, root: string, name: string, e: FileEntry, mode: number) {
  const abs = path.join(root, checkPath(e.path));
  try {
    await w.file(name, abs, e.size, mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (err instanceof FileChanged || code === "ENOENT" || code === "EISDIR")
      throw new WorkspaceError(
        "SLOTH_WORKSPACE_CHANGED",
        `cannot pack ${JSON.stringify(e.path)}: it changed after the scan`,
        { cause: err, details: { entry: e.path }, hint: "scan again and resend" },
      );
    throw err;
  }
}
