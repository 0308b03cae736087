import { createHash, type Hash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { unsafe, WorkspaceError } from "./errors.js";
import { checkManifest, isHash } from "./manifest.js";
import { SafeTree } from "./paths.js";
import { type ReadOptions, readTar } from "./tar-read.js";
import type { Manifest } from "./types.js";

/** Options of a {@link BlobCache}. */
export interface BlobCacheOptions {
  /** After each materialize, prune least recently used blobs down to this size. Default: no bound. */
  maxBytes?: number;
}

/** Options of {@link BlobCache.ingest}. */
export interface IngestOptions extends ReadOptions {
  /** Only these hashes may arrive (what {@link BlobCache.missing} asked for); others are refused. */
  expect?: Iterable<string>;
}

/** Options of {@link BlobCache.materialize}. */
export interface MaterializeOptions {
  /**
   * "copy" (default) gives the task private files. "hardlink" is much faster
   * but shares inodes with the cache: a task that writes a file in place or
   * changes its mode corrupts the cached blob, so use it only for read-only
   * workspaces.
   */
  files?: "copy" | "hardlink";
}

/**
 * Agent side: a content-addressed store of blobs (`objects/ab/cdef…`), fed by
 * {@link packBlobs} archives, from which workspaces are built.
 */
export class BlobCache {
  readonly dir: string;
  private readonly objects: string;
  private readonly tmp: string;
  private readonly maxBytes: number | undefined;
  private readonly fanout = new Set<string>();
  private seq = 0;

  /** Opens (creating) the cache in `dir`. */
  constructor(dir: string, options: BlobCacheOptions = {}) {
    this.dir = path.resolve(dir);
    this.objects = path.join(this.dir, "objects");
    this.tmp = path.join(this.dir, "tmp");
    this.maxBytes = options.maxBytes;
    fs.mkdirSync(this.objects, { recursive: true });
    fs.mkdirSync(this.tmp, { recursive: true });
  }

  /** Where the blob with this hash lives. */
  blobPath(hash: string): string {
    return path.join(this.objects, hash.slice(0, 2), hash.slice(2));
  }

  /** True when the cache holds the blob. */
  has(hash: string): boolean {
    return isHash(hash) && fs.existsSync(this.blobPath(hash));
  }

  /** The hashes of the manifest's files not in the cache, each once. */
  missing(manifest: Manifest): string[] {
    const seen = new Set<string>();
    const out: string[] = [];
    for (const e of manifest.entries) {
      if (e.type !== "file" || seen.has(e.hash)) continue;
      seen.add(e.hash);
      if (!this.has(e.hash)) out.push(e.hash);
    }
    return out;
  }

  /**
   * Stores the blobs of a {@link packBlobs} archive. Each entry must be a
   * regular file named by a sha256 its content matches; anything else
   * rejects the archive (SLOTH_ARCHIVE_UNSAFE, SLOTH_BLOB_MISMATCH,
   * SLOTH_WORKSPACE_TOO_LARGE), keeping the blobs already verified.
   */
  async ingest(
    stream: AsyncIterable<Uint8Array>,
    options: IngestOptions = {},
  ): Promise<{ blobs: number; bytes: number }> {
    const expected = options.expect ? new Set(options.expect) : undefined;
    let blobs = 0;
    let bytes = 0;
    await readTar(stream, options, (h) => {
      if (h.type !== "file") throw unsafe(h.name, `${h.type} entries are not blobs`);
      if (!isHash(h.name)) throw unsafe(h.name, "not a blob name (sha256 hex)");
      if (expected && !expected.has(h.name))
        throw new WorkspaceError(
          "SLOTH_BLOB_MISMATCH",
          `cannot accept blob ${JSON.stringify(h.name)}: not asked for`,
          {
            details: { entry: h.name },
          },
        );
      // Already here: its content is known good, skip rewriting it.
      if (this.has(h.name)) return undefined;
      blobs++;
      bytes += h.size;
      return this.blobWriter(h.name, h.size);
    });
    return { blobs, bytes };
  }

  private blobWriter(hash: string, size: number) {
    const tmp = path.join(this.tmp, `${hash}.${process.pid}.${++this.seq}`);
    // Read-only, so a workspace hard-linked to it cannot be written by accident.
    let fd: number | undefined = fs.openSync(tmp, "wx", 0o444);
    const h: Hash = createHash("sha256");
    let written = 0;
    const close = () => {
      if (fd !== undefined) fs.closeSync(fd);
      fd = undefined;
    };
    return {
      write: (chunk: Uint8Array) => {
        h.update(chunk);
        written += chunk.length;
        let off = 0;
        while (off < chunk.length) off += fs.writeSync(fd as number, chunk, off);
      },
      end: () => {
        close();
        const actual = h.digest("hex");
        if (actual !== hash || written !== size) {
          fs.rmSync(tmp, { force: true });
          throw new WorkspaceError(
            "SLOTH_BLOB_MISMATCH",
            `cannot accept blob ${JSON.stringify(hash)}: its content hashes to ${actual}`,
            { details: { entry: hash, actual, size: written } },
          );
        }
        const sub = hash.slice(0, 2);
        if (!this.fanout.has(sub)) {
          fs.mkdirSync(path.join(this.objects, sub), { recursive: true });
          this.fanout.add(sub);
        }
        fs.renameSync(tmp, this.blobPath(hash));
      },
      abort: () => {
        close();
        fs.rmSync(tmp, { force: true });
      },
    };
  }

  /**
   * Builds `targetDir` (which must not exist or be empty) from the cache:
   * directories, files with their modes and mtimes, then symlinks, never
   * writing through a symlink. On failure the target is left partial: remove it.
   */
  async materialize(
    manifest: Manifest,
    targetDir: string,
    options: MaterializeOptions = {},
  ): Promise<void> {
    const entries = checkManifest(manifest);
    const root = path.resolve(targetDir);
    fs.mkdirSync(root, { recursive: true });
    if (fs.readdirSync(root).length > 0)
      throw new WorkspaceError(
        "SLOTH_INVALID_ARGUMENT",
        `cannot materialize into ${targetDir}: not empty`,
        { hint: "use a fresh directory" },
      );
    const tree = new SafeTree(root);
    const dirs: { abs: string; mode: number }[] = [];
    const hardlink = options.files === "hardlink";
    for (const e of entries) {
      if (e.type === "symlink") continue;
      tree.parents(e.path, true);
      const abs = tree.abs(e.path);
      if (e.type === "dir") {
        // A child listed before its parent may have created it already.
        if (!fs.existsSync(abs)) fs.mkdirSync(abs, { mode: 0o700 });
        tree.remember(e.path);
        dirs.push({ abs, mode: e.mode });
        continue;
      }
      const blob = this.blobPath(e.hash);
      try {
        if (hardlink) fs.linkSync(blob, abs);
        else fs.copyFileSync(blob, abs, fs.constants.COPYFILE_EXCL);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        throw new WorkspaceError(
          "SLOTH_BLOB_MISSING",
          `cannot materialize ${JSON.stringify(e.path)}: blob ${e.hash} is not in the cache`,
          { cause: err, details: { entry: e.path, hash: e.hash } },
        );
      }
      if (!hardlink) {
        fs.chmodSync(abs, e.mode);
        // The sender's mtime lets diffWorkspace trust size+mtime afterwards.
        if (e.mtimeMs !== undefined) fs.utimesSync(abs, e.mtimeMs / 1000, e.mtimeMs / 1000);
      }
    }
    // Links last: nothing is written after them, so none can be followed.
    for (const e of entries) {
      if (e.type !== "symlink") continue;
      tree.parents(e.path, true);
      fs.symlinkSync(e.target, tree.abs(e.path));
    }
    // Deepest first, so a read-only directory does not block its children.
    for (const d of dirs.reverse()) fs.chmodSync(d.abs, d.mode);
    if (this.maxBytes !== undefined) {
      const keep = new Set<string>();
      for (const e of entries) if (e.type === "file") keep.add(e.hash);
      this.prune(this.maxBytes, keep);
    }
  }

  /**
   * Removes least recently used blobs (by the later of atime and mtime)
   * until the cache holds at most `maxBytes`, sparing `keep`.
   */
  prune(
    maxBytes: number,
    keep: ReadonlySet<string> = new Set(),
  ): { removed: number; bytes: number } {
    const blobs: { file: string; hash: string; size: number; used: number }[] = [];
    let total = 0;
    for (const sub of fs.readdirSync(this.objects)) {
      for (const rest of fs.readdirSync(path.join(this.objects, sub))) {
        const file = path.join(this.objects, sub, rest);
        const st = fs.statSync(file);
        total += st.size;
        blobs.push({
          file,
          hash: sub + rest,
          size: st.size,
          used: Math.max(st.atimeMs, st.mtimeMs),
        });
      }
    }
    blobs.sort((a, b) => a.used - b.used);
    let removed = 0;
    let freed = 0;
    for (const b of blobs) {
      if (total <= maxBytes) break;
      if (keep.has(b.hash)) continue;
      fs.rmSync(b.file, { force: true });
      total -= b.size;
      freed += b.size;
      removed++;
    }
    return { removed, bytes: freed };
  }
}
