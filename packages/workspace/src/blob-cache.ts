import path from "node:path";
import { type BundledBlob, bundleWriter, parseBundle } from "./bundle.js";
import { unsafe, WorkspaceError } from "./errors.js";
import { checkManifest, isHash } from "./manifest.js";
import {
  type BuildResult,
  type BuiltRecord,
  checkKnown,
  type KnownCheck,
  type MaterializeOptions,
  TreeBuilder,
} from "./materialize.js";
import { PackStore } from "./pack-store.js";
import { type ReadOptions, readTar } from "./tar-read.js";
import { BUNDLE_PAX } from "./tar-write.js";
import type { Manifest, ManifestEntry } from "./types.js";

export type { BuildResult, MaterializeOptions } from "./materialize.js";

// Builds remembered for recycling; an agent keeps a few workspaces.
const MAX_RECORDS = 16;
/** How long a check made by {@link BlobCache.inspect} is used by a build recycling its directory. */
const EARLY_CHECK_MS = 10_000;

/** Options of a {@link BlobCache}. */
export interface BlobCacheOptions {
  /** After each materialize, prune least recently used packs down to this size. Default: no bound. */
  maxBytes?: number;
}

/** Options of {@link BlobCache.ingest}. */
export interface IngestOptions extends ReadOptions {
  /** Only these hashes may arrive (what {@link BlobCache.missing} asked for); others are refused. */
  expect?: Iterable<string>;
}

/**
 * A workspace being built by {@link BlobCache.build}: its files are written
 * as their blobs reach the cache, by any ingest of the same cache object.
 */
export interface WorkspaceBuild {
  /** The directory being built. */
  readonly dir: string;
  /**
   * Waits for the part that needs no new blob, writes the files whose
   * blobs arrived in another process meanwhile, then links and modes;
   * SLOTH_BLOB_MISSING when a blob never came.
   */
  finish(): Promise<BuildResult>;
  /** Stops the build; the directory is left partial: remove it. */
  abort(): Promise<void>;
}

/**
 * Agent side: a content-addressed store of blobs, fed by {@link packBlobs}
 * archives, from which workspaces are built. Blobs are appended to one pack
 * file per ingest (with a JSON index), so storing them costs no file
 * creation per blob; several processes may share the folder.
 */
export class BlobCache {
  readonly dir: string;
  private readonly packs: PackStore;
  private readonly maxBytes: number | undefined;
  // Builds waiting for blobs: every ingest hands them what it stores.
  private readonly building = new Set<TreeBuilder>();
  // The last builds of this object, by directory, for recycling them.
  private readonly built = new Map<string, BuiltRecord>();
  /** Checks started by {@link inspect}, by directory. */
  private readonly checks = new Map<
    string,
    { started: number; check: Promise<KnownCheck | undefined> }
  >();

  /** Opens (creating) the cache in `dir`. */
  constructor(dir: string, options: BlobCacheOptions = {}) {
    this.dir = path.resolve(dir);
    this.packs = new PackStore(path.join(this.dir, "packs"));
    this.maxBytes = options.maxBytes;
  }

  /** True when the cache holds the blob. */
  has(hash: string): boolean {
    this.packs.refresh();
    return isHash(hash) && this.packs.get(hash) !== undefined;
  }

  /** The hashes of the manifest's files not in the cache, each once. */
  missing(manifest: Manifest): string[] {
    this.packs.refresh();
    const seen = new Set<string>();
    const out: string[] = [];
    for (const e of manifest.entries) {
      if (e.type !== "file" || seen.has(e.hash)) continue;
      seen.add(e.hash);
      if (this.packs.get(e.hash) === undefined) out.push(e.hash);
    }
    return out;
  }

  /**
   * Stores the blobs of a {@link packBlobs} archive. Each entry must be a
   * regular file named by a sha256 its content matches, or a bundle of such
   * blobs (packBlobs' `bundle`), each checked the same; anything else
   * rejects the archive (SLOTH_ARCHIVE_UNSAFE, SLOTH_BLOB_MISMATCH,
   * SLOTH_WORKSPACE_TOO_LARGE), keeping the blobs already verified.
   * Returns the blobs newly stored; `onBlob` is called after each one, with
   * its bytes when small enough to be held in memory.
   */
  async ingest(
    stream: AsyncIterable<Uint8Array>,
    options: IngestOptions = {},
    onBlob?: (hash: string, data?: Uint8Array) => void,
  ): Promise<{ blobs: number; bytes: number }> {
    this.packs.refresh();
    const expected = options.expect ? new Set(options.expect) : undefined;
    const pack = this.packs.append();
    const maxEntries = options.maxEntries ?? 10_000_000;
    let blobs = 0;
    let bytes = 0;
    // Blobs announced so far, bundled ones included.
    let counted = 0;
    let failure: unknown;
    const stored = (hash: string, size: number, data?: Uint8Array) => {
      blobs++;
      bytes += size;
      onBlob?.(hash, data);
      for (const b of this.building) b.blobArrived(hash, data);
    };
    const open = ({ hash, size }: BundledBlob) => {
      if (expected && !expected.has(hash))
        throw new WorkspaceError(
          "SLOTH_BLOB_MISMATCH",
          `cannot accept blob ${JSON.stringify(hash)}: not asked for`,
          { details: { entry: hash } },
        );
      // Already here (or earlier in this archive): known good, skip it.
      if (this.packs.get(hash) !== undefined || pack.has(hash)) return undefined;
      return pack.blob(hash, size, stored);
    };
    try {
      await readTar(
        stream,
        options,
        (h) => {
          const list = h.pax?.[BUNDLE_PAX];
          if (list === undefined) {
            if (h.type !== "file") throw unsafe(h.name, `${h.type} entries are not blobs`);
            if (!isHash(h.name)) throw unsafe(h.name, "not a blob name (sha256 hex)");
            counted++;
            return open({ hash: h.name, size: h.size });
          }
          const bundled = parseBundle(h, list);
          counted += bundled.length;
          if (counted > maxEntries)
            throw new WorkspaceError(
              "SLOTH_WORKSPACE_TOO_LARGE",
              `cannot accept the archive at entry ${JSON.stringify(h.name)}: more than ${maxEntries} blobs`,
              { details: { entry: h.name, limit: maxEntries } },
            );
          return bundleWriter(bundled, open);
        },
        () => {
          const waits: Promise<void>[] = [];
          const p = pack.ready();
          if (p) waits.push(p);
          for (const b of this.building) {
            const w = b.ready();
            if (w) waits.push(w);
          }
          return waits.length === 0 ? undefined : Promise.all(waits).then(() => {});
        },
      );
    } catch (e) {
      failure = e;
    }
    // The blobs verified before a failure are kept.
    try {
      await pack.commit();
    } catch (e) {
      failure ??= e;
    }
    if (failure !== undefined) throw failure;
    return { blobs, bytes };
  }

  /**
   * Builds `targetDir` from the cache: directories, files with their modes
   * and mtimes, then symlinks, never writing through a symlink. The target
   * must not exist or be empty, unless `recycle` names an earlier workspace
   * to move there and repair. On failure the target is left partial: remove it.
   */
  async materialize(
    manifest: Manifest,
    targetDir: string,
    options: MaterializeOptions = {},
  ): Promise<{ written: number; kept: number }> {
    return this.build(manifest, targetDir, options).finish();
  }

  /**
   * Starts building `targetDir` (as {@link materialize} does) before the
   * blobs it lacks have arrived: the files whose blobs are cached are
   * written at once, the others as soon as an {@link ingest} of this cache
   * stores their blob, so the disk work overlaps the upload. An agent
   * starts the build when it is told the manifest and finishes it when the
   * task needs the directory.
   */
  build(manifest: Manifest, targetDir: string, options: MaterializeOptions = {}): WorkspaceBuild {
    const entries = checkManifest(manifest);
    this.packs.refresh();
    const dir = path.resolve(targetDir);
    let record: BuiltRecord | undefined;
    let early: Promise<KnownCheck | undefined> | undefined;
    if (options.recycle !== undefined) {
      const from = path.resolve(options.recycle);
      record = this.built.get(from);
      this.built.delete(from);
      const c = this.checks.get(from);
      this.checks.delete(from);
      // Only a check made moments ago vouches for the directory now.
      if (c && Date.now() - c.started < EARLY_CHECK_MS) early = c.check;
    }
    const b = new TreeBuilder(this.packs, entries, dir, options, record, early);
    this.building.add(b);
    const started = b.start();
    started.catch(() => {});
    let done = false;
    const end = () => {
      done = true;
      this.building.delete(b);
      b.close();
    };
    return {
      dir,
      finish: async () => {
        if (done) throw new WorkspaceError("SLOTH_INVALID_ARGUMENT", `cannot finish ${dir}: done`);
        try {
          try {
            await started;
          } catch (e) {
            // Files already handed to the writer thread land before the caller removes the folder.
            await b.quiesce();
            throw e;
          }
          const r = await b.finish();
          this.built.delete(dir);
          this.built.set(dir, { entries, at: Date.now() });
          if (this.built.size > MAX_RECORDS)
            this.built.delete(this.built.keys().next().value as string);
          this.bound(entries);
          return r;
        } finally {
          end();
        }
      },
      abort: async () => {
        if (done) return;
        this.building.delete(b);
        await started.catch(() => {});
        await b.quiesce();
        end();
      },
    };
  }

  /**
   * Starts checking `dir`, a directory an earlier {@link build} of this
   * cache finished, against the record of that build (an lstat per entry),
   * so that a build recycling it within the next few seconds uses the check
   * instead of making it then: an agent calls this when the runner says
   * which workspace it sent last, and the check runs while the runner scans.
   * Does nothing for a directory without a record.
   */
  inspect(dir: string): void {
    const at = path.resolve(dir);
    const record = this.built.get(at);
    if (record === undefined || this.checks.has(at)) return;
    const check = checkKnown(at, record).catch(() => undefined);
    this.checks.set(at, { started: Date.now(), check });
    // Forgotten if no build comes for it.
    setTimeout(() => {
      if (this.checks.get(at)?.check === check) this.checks.delete(at);
    }, EARLY_CHECK_MS).unref();
  }

  /**
   * {@link ingest} and {@link materialize} in one pass: builds `targetDir`
   * from the cache while the missing blobs arrive on `stream`, writing each
   * blob's files as soon as it is verified, so the agent's disk work runs
   * while the runner is still sending. Fails with SLOTH_BLOB_MISSING when a
   * blob the manifest needs neither is cached nor arrives.
   */
  async receive(
    manifest: Manifest,
    targetDir: string,
    stream: AsyncIterable<Uint8Array>,
    options: IngestOptions & MaterializeOptions = {},
  ): Promise<{ written: number; kept: number; blobs: number; bytes: number }> {
    const build = this.build(manifest, targetDir, options);
    let got: { blobs: number; bytes: number };
    try {
      got = await this.ingest(stream, options);
    } catch (e) {
      await build.abort();
      throw e;
    }
    return { ...(await build.finish()), ...got };
  }

  private bound(entries: ManifestEntry[]): void {
    if (this.maxBytes === undefined) return;
    const keep = new Set<string>();
    for (const e of entries) if (e.type === "file") keep.add(e.hash);
    this.prune(this.maxBytes, keep);
  }

  /**
   * Removes the least recently used packs (by the later of atime and mtime)
   * until the cache holds at most `maxBytes`, sparing packs holding `keep`.
   */
  prune(
    maxBytes: number,
    keep: ReadonlySet<string> = new Set(),
  ): { removed: number; bytes: number } {
    this.packs.refresh();
    const packs = this.packs.list();
    let total = packs.reduce((n, p) => n + p.bytes, 0);
    const kept = new Set<string>();
    for (const h of keep) {
      const loc = this.packs.get(h);
      if (loc) kept.add(loc.pack);
    }
    let removed = 0;
    let freed = 0;
    for (const p of packs) {
      if (total <= maxBytes) break;
      if (kept.has(p.id)) continue;
      this.packs.remove(p.id);
      total -= p.bytes;
      freed += p.bytes;
      removed++;
    }
    return { removed, bytes: freed };
  }

  /** Bytes held by the cache. */
  size(): number {
    return this.packs.list().reduce((n, p) => n + p.bytes, 0);
  }
}
