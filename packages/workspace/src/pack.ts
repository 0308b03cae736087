import path from "node:path";
import { WorkspaceError } from "./errors.js";
import { free, pick, take } from "./kept.js";
import { filesByHash } from "./manifest.js";
import { checkPath } from "./paths.js";
import { FileChanged, type PackOptions, type PackWriter, writeTar } from "./tar-write.js";
import type { Changes, FileEntry, Manifest } from "./types.js";

export type { PackOptions } from "./tar-write.js";

/** How {@link packBlobs} writes its archive. */
export interface BlobPackOptions extends PackOptions {
  /**
   * Send small blobs in bundles, several per tar entry, which costs both
   * ends far less per file. Only for a receiver that reads them:
   * `BlobCache.ingest` does; an agent says so when it answers
   * PrepareWorkspace. Default false.
   */
  bundle?: boolean;
}

/** Blobs up to this size travel in bundles; larger ones in entries of their own. */
const BUNDLE_BLOB_MAX = 256 * 1024;
/** A bundle closes at this many bytes or blobs, whichever comes first. */
const BUNDLE_BYTES = 1024 * 1024;
const BUNDLE_BLOBS = 256;

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
  options: BlobPackOptions = {},
): AsyncIterable<Uint8Array> {
  const root = path.resolve(dir);
  const byHash = filesByHash(manifest);
  return writeTar(async (w) => {
    const kept = take(manifest);
    try {
      await packEach(w, root, byHash, hashes, kept, options.bundle === true);
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
  bundle: boolean,
): Promise<void> {
  const sent = new Set<string>();
  let pending: { hash: string; data: Uint8Array }[] = [];
  let pendingBytes = 0;
  let bundles = 0;
  const close = async () => {
    const blobs = pending;
    pending = [];
    pendingBytes = 0;
    await w.bundle(`bundle-${++bundles}`, blobs);
  };
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
    if (bundle && e.size <= BUNDLE_BLOB_MAX) {
      const bytes = data !== undefined && data.length === e.size ? data : readFile(w, root, e);
      pending.push({ hash, data: bytes });
      pendingBytes += bytes.length;
      if (pendingBytes >= BUNDLE_BYTES || pending.length >= BUNDLE_BLOBS) await close();
    } else if (data !== undefined && data.length === e.size) await w.data(hash, data, 0o644);
    else await packFile(w, root, hash, e, 0o644);
  }
  if (pending.length > 0) await close();
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
    throw changed(err, e);
  }
}

function readFile(w: PackWriter, root: string, e: FileEntry): Buffer {
  try {
    return w.read(path.join(root, checkPath(e.path)), e.size);
  } catch (err) {
    throw changed(err, e);
  }
}

/** A file gone or resized since the scan, as SLOTH_WORKSPACE_CHANGED; other errors as they are. */
function changed(err: unknown, e: FileEntry): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (err instanceof FileChanged || code === "ENOENT" || code === "EISDIR")
    return new WorkspaceError(
      "SLOTH_WORKSPACE_CHANGED",
      `cannot pack ${JSON.stringify(e.path)}: it changed after the scan`,
      { cause: err, details: { entry: e.path }, hint: "scan again and resend" },
    );
  return err;
}
