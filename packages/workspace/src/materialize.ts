// Building a workspace from the cache: into a fresh directory, or by
// recycling an earlier one (moved into place and repaired), which turns an
// unchanged re-sync into a walk of lstat calls instead of a file creation
// per file, and spares the disk the slow delete-then-create cycle.
import fs from "node:fs";
import path from "node:path";
import { compareEntries } from "./diff.js";
import { unsafe, WorkspaceError } from "./errors.js";
import { FileWriter, type WriteFailure, worthAThread } from "./file-writer.js";
import { hashFile } from "./hash.js";
import { Pacer } from "./pacer.js";
import type { PackStore } from "./pack-store.js";
import { lstatOrUndefined, SafeTree } from "./paths.js";
import { scanTree } from "./scan.js";
import type { FileEntry, ManifestEntry } from "./types.js";
import { mayBeUndecodable, removeUndecodable } from "./undecodable.js";

/** Options of {@link BlobCache.materialize}. */
export interface MaterializeOptions {
  /**
   * A directory built earlier by materialize (its task may have changed
   * it), to move to the target and repair: only entries that differ from
   * the manifest are removed or written, anything else in it is deleted.
   * It must be on the same filesystem and is consumed.
   */
  recycle?: string;
}

/** What a build did: files written, files kept from a recycled directory. */
export interface BuildResult {
  written: number;
  kept: number;
  /**
   * Recycled: Date.now() when the check of what the directory held began.
   * A change made to it after that, and before the build was finished, is
   * not known to the build: a diff after the task should trust ctimes from
   * before this time only, not from the end of the build.
   */
  checkedAt?: number;
}

/**
 * What a build left in its directory and when it was done: the next
 * recycling of that directory lstats each entry instead of listing every
 * directory, and trusts an entry only if its ctime (which no process can set
 * back) shows it untouched since.
 */
export interface BuiltRecord {
  entries: ManifestEntry[];
  /** Date.now() once the build was complete. */
  at: number;
}

// Timestamps come from a coarse kernel clock, up to a tick (≤ 10 ms) behind
// Date.now(): a change right after `at` may carry a ctime this much before it.
const CTIME_SLACK_MS = 25;

const O_CREATE_NEW =
  fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/**
 * Writes checked `entries` under `root`: directories and the files whose
 * blobs are cached first ({@link TreeBuilder.start}), files whose blobs
 * arrive later as they arrive ({@link TreeBuilder.blobArrived}), links and
 * directory modes at the end ({@link TreeBuilder.finish}).
 */
export class TreeBuilder {
  private readonly tree: SafeTree;
  private readonly reader: BlobReader;
  private have = new Map<string, ManifestEntry>();
  private readonly pacer = new Pacer();
  private readonly pending = new Map<string, { e: FileEntry; abs: string }[]>();
  private readonly dirs: { abs: string; mode: number }[] = [];
  private written = 0;
  private kept = 0;
  private failure: unknown;
  /** Large builds create their files on the writer thread. */
  private readonly writer: FileWriter | undefined;
  /** Packs the writer thread copies from, touched at close as the reader's are. */
  private readonly packsRead = new Set<string>();
  /** Set once the build failed or was aborted: nothing more is written. */
  private stopped = false;
  /** Recycled: Date.now() when the check of what the directory held began. */
  private checkedAt: number | undefined;

  constructor(
    private readonly packs: PackStore,
    private readonly entries: ManifestEntry[],
    private readonly root: string,
    private readonly options: MaterializeOptions,
    private readonly record?: BuiltRecord,
    /** A check of the recycled directory already under way ({@link checkKnown}). */
    private readonly early?: Promise<KnownCheck | undefined>,
  ) {
    this.tree = new SafeTree(root);
    this.reader = new BlobReader(packs);
    let files = 0;
    for (const e of entries) if (e.type === "file") files++;
    this.writer = worthAThread(files) ? new FileWriter(root, (f) => this.writeError(f)) : undefined;
  }

  /** A failure of the writer thread, as the synchronous writes would have reported it. */
  private writeError(f: WriteFailure): Error {
    const rel = f.path.startsWith(`${this.root}/`) ? f.path.slice(this.root.length + 1) : f.path;
    if (f.source)
      return new WorkspaceError(
        "SLOTH_BLOB_MISSING",
        `cannot materialize ${JSON.stringify(rel)}: its blob cannot be read from the cache (${f.message})`,
        { details: { entry: rel } },
      );
    if (f.code === "SLOTH_MOVED") return unsafe(rel, f.message);
    return Object.assign(new Error(`cannot write ${JSON.stringify(rel)}: ${f.message}`), {
      code: f.code,
      path: f.path,
    });
  }

  /** Resolves when the writer thread has room; undefined when it has (or there is none). */
  ready(): Promise<void> | undefined {
    return this.writer?.ready();
  }

  /** Writes a file of the cache: on the writer thread, or here. */
  private copy(e: FileEntry, abs: string): void {
    if (this.writer === undefined) {
      this.reader.write(e, abs);
      return;
    }
    const loc = this.packs.get(e.hash);
    if (loc === undefined || loc.size !== e.size) throw missing(e);
    const file = this.packs.packPath(loc.pack);
    this.packsRead.add(file);
    this.writer.write(abs, e.mode & 0o777, e.mtimeMs, { file, offset: loc.offset, size: e.size });
  }

  /** Creates the directories and the files the cache can fill; the rest waits. */
  async start(): Promise<void> {
    // Not in the caller's turn: an agent answers with the missing blobs first.
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.have = await prepare(
      this.root,
      this.entries,
      this.options,
      this.record,
      this.pacer,
      this.early,
      (at) => {
        this.checkedAt = at;
      },
    );
    for (const e of this.entries) {
      if (this.pacer.due()) {
        await this.pacer.pause();
        const room = this.writer?.ready();
        if (room) await room;
      }
      if (this.stopped) return;
      if (e.type === "symlink") continue;
      this.tree.parents(e.path, true);
      const abs = this.tree.abs(e.path);
      const h = this.have.get(e.path);
      if (e.type === "dir") {
        const mode = e.mode & 0o777;
        // Created with its mode when that leaves it writable, so no chmod at
        // the end touches its ctime (a later recycling trusts old ctimes).
        const direct = (mode & 0o300) === 0o300 && (mode & UMASK) === 0;
        // A child listed before its parent may have created it already.
        let made = false;
        if (h === undefined && !fs.existsSync(abs)) {
          fs.mkdirSync(abs, { mode: direct ? mode : 0o700 });
          made = direct;
        }
        this.tree.remember(e.path);
        if (!made && (h?.type !== "dir" || h.mode !== mode)) this.dirs.push({ abs, mode });
      } else if (h?.type === "file") {
        if (h.mode !== (e.mode & 0o777)) fs.chmodSync(abs, e.mode & 0o777);
        if (e.mtimeMs !== undefined && h.mtimeMs !== e.mtimeMs)
          fs.utimesSync(abs, e.mtimeMs / 1000, e.mtimeMs / 1000);
        this.kept++;
      } else if (this.packs.get(e.hash) === undefined) {
        const list = this.pending.get(e.hash);
        if (list) list.push({ e, abs });
        else this.pending.set(e.hash, [{ e, abs }]);
      } else {
        this.copy(e, abs);
        this.written++;
      }
    }
  }

  /**
   * Writes the files waiting for a blob just stored and verified. A failure
   * is kept for {@link finish}: the ingest that stored the blob goes on.
   */
  blobArrived(hash: string, data?: Uint8Array): void {
    const list = this.pending.get(hash);
    if (list === undefined || this.failure !== undefined || this.stopped) return;
    this.pending.delete(hash);
    try {
      this.fill(list, data);
    } catch (e) {
      this.failure = e;
    }
  }

  private fill(list: { e: FileEntry; abs: string }[], data?: Uint8Array): void {
    for (const { e, abs } of list) {
      // A manifest whose size for a blob is not the blob's: refused, as for a cached blob.
      if (data !== undefined && data.length !== e.size)
        throw new WorkspaceError(
          "SLOTH_BLOB_MISMATCH",
          `cannot materialize ${JSON.stringify(e.path)}: the manifest gives ${e.size} bytes for blob ${e.hash}, which has ${data.length}`,
          { details: { entry: e.path, hash: e.hash } },
        );
      if (data === undefined) this.copy(e, abs);
      else if (this.writer === undefined) writeNew(e, abs, (out) => writeAll(out, data));
      else this.writer.write(abs, e.mode & 0o777, e.mtimeMs, { data });
      this.written++;
    }
  }

  /**
   * Stops the build: nothing more is queued, and what the writer thread
   * was given is done (or failed) when this resolves, so the caller may
   * remove the folder.
   */
  async quiesce(): Promise<void> {
    this.stopped = true;
    this.pending.clear();
    await this.writer?.close();
  }

  /** Creates the symlinks and sets directory modes; fails if a blob never came. */
  async finish(): Promise<BuildResult> {
    try {
      return await this.complete();
    } catch (e) {
      await this.quiesce();
      throw e;
    }
  }

  private async complete(): Promise<BuildResult> {
    if (this.failure !== undefined) throw this.failure;
    // Blobs another process stored meanwhile were skipped in the stream.
    if (this.pending.size > 0) this.packs.refresh();
    for (const [hash, list] of this.pending) {
      if (this.packs.get(hash) === undefined) throw missing((list[0] as { e: FileEntry }).e);
      this.fill(list);
    }
    this.pending.clear();
    await this.writer?.drain();
    // Links last: nothing is written after them, so none can be followed.
    for (const e of this.entries) {
      if (e.type !== "symlink" || this.have.has(e.path)) continue;
      this.tree.parents(e.path, true);
      fs.symlinkSync(e.target, this.tree.abs(e.path));
    }
    // Deepest first, so a read-only directory does not block its children.
    for (const d of this.dirs.reverse()) fs.chmodSync(d.abs, d.mode);
    return {
      written: this.written,
      kept: this.kept,
      ...(this.checkedAt !== undefined ? { checkedAt: this.checkedAt } : {}),
    };
  }

  /** Closes the pack files read, and marks those used as just used (pruning goes by last use). */
  close(): void {
    this.reader.close();
    const now = Date.now() / 1000;
    for (const file of this.packsRead) {
      try {
        fs.utimesSync(file, now, now);
      } catch {
        // Read-only cache folder, or pruned since: pruning falls back to ingest time.
      }
    }
    this.packsRead.clear();
  }
}

/** Makes `root` ready: a fresh empty directory, or the recycled one repaired. */
async function prepare(
  root: string,
  entries: ManifestEntry[],
  options: MaterializeOptions,
  record: BuiltRecord | undefined,
  pacer: Pacer,
  early?: Promise<KnownCheck | undefined>,
  checked: (at: number) => void = () => {},
): Promise<Map<string, ManifestEntry>> {
  // Only a real directory is recycled: a symlink put in its place is not followed.
  if (options.recycle !== undefined && lstatOrUndefined(options.recycle)?.isDirectory()) {
    // A check under way reads the directory where it is: let it end before the move.
    if (early) await early.catch(() => undefined);
    if (path.resolve(options.recycle) !== root) {
      if (fs.existsSync(root)) {
        if (fs.readdirSync(root).length > 0) throw notEmpty(root);
        fs.rmdirSync(root);
      }
      fs.renameSync(options.recycle, root);
    }
    if (record) return repairKnown(root, entries, record, pacer, early, checked);
    checked(Date.now());
    return repair(root, entries);
  }
  fs.mkdirSync(root, { recursive: true });
  if (fs.readdirSync(root).length > 0) throw notEmpty(root);
  return new Map();
}

function notEmpty(root: string): WorkspaceError {
  return new WorkspaceError(
    "SLOTH_INVALID_ARGUMENT",
    `cannot materialize into ${root}: not empty`,
    {
      hint: "use a fresh directory",
    },
  );
}

/**
 * Removes from a recycled directory everything the manifest does not have
 * as it is (never following a symlink); returns what stays.
 */
async function repair(root: string, entries: ManifestEntry[]): Promise<Map<string, ManifestEntry>> {
  const { want, parents } = wanted(entries);
  const others: string[] = [];
  const actual = await scanTree(root, { reuse: { entries, totalBytes: 0 } }, { others, all: true });
  for (const rel of others) {
    const abs = path.join(root, rel);
    // A name a string cannot stand for: removed by its bytes.
    if (mayBeUndecodable(path.basename(rel)) && lstatOrUndefined(abs) === undefined)
      removeUndecodable(path.dirname(abs));
    else fs.rmSync(abs, { force: true });
  }
  const have = new Map<string, ManifestEntry>();
  for (const h of actual.entries.reverse()) {
    const w = want.get(h.path);
    const keep =
      h.type === "dir"
        ? w?.type === "dir" || (w === undefined && parents.has(h.path))
        : w !== undefined && compareEntries(w, h, false);
    if (keep) have.set(h.path, h);
    else fs.rmSync(path.join(root, h.path), { recursive: true, force: true });
  }
  return have;
}

/**
 * What a directory built earlier holds now, entry by entry of its record:
 * the entry as found (undefined when gone, of another type, or changed),
 * and the directories whose listing may have changed since the build.
 */
export interface KnownCheck {
  found: (ManifestEntry | undefined)[];
  /** Directories (relative) whose ctime moved since the build: listed to find new names. */
  changedDirs: string[];
  /** Date.now() when the check started. */
  at: number;
}

/**
 * Checks a directory against the record of its last build: each entry is
 * checked with lstat (no directory listing), and trusted only if its ctime
 * (which no process can set back) shows it untouched since the build; a
 * file touched since counts as found only if its content still hashes as
 * recorded. Needs no manifest, so an agent can run it while the runner is
 * still scanning.
 */
export async function checkKnown(
  root: string,
  record: BuiltRecord,
  pacer = new Pacer(),
): Promise<KnownCheck> {
  const at = Date.now();
  const limit = record.at - CTIME_SLACK_MS;
  const prefix = root.endsWith("/") ? root : `${root}/`;
  const found: (ManifestEntry | undefined)[] = new Array(record.entries.length);
  const changedDirs: string[] = [];
  const missingDirs = new Set<string>();
  for (let i = 0; i < record.entries.length; i++) {
    if (pacer.due()) await pacer.pause();
    const r = record.entries[i] as ManifestEntry;
    const slash = r.path.lastIndexOf("/");
    if (slash !== -1 && missingDirs.has(r.path.slice(0, slash))) {
      missingDirs.add(r.path);
      continue;
    }
    const abs = prefix + r.path;
    const st = lstatOrUndefined(abs);
    if (st === undefined) {
      missingDirs.add(r.path);
      continue;
    }
    if (r.type === "dir" && st.isDirectory()) {
      if (st.ctimeMs >= limit) changedDirs.push(r.path);
      found[i] = { path: r.path, type: "dir", mode: st.mode & 0o777 };
    } else if (r.type === "file" && st.isFile() && st.size === r.size) {
      const untouched = st.ctimeMs < limit || hashFile(abs, st.size).hash === r.hash;
      if (untouched) found[i] = { ...r, mode: st.mode & 0o777, mtimeMs: Math.round(st.mtimeMs) };
    } else if (r.type === "symlink" && st.isSymbolicLink()) {
      if (st.ctimeMs < limit || fs.readlinkSync(abs) === r.target) found[i] = r;
    } else if (r.type === "dir") {
      // Something else in a directory's place: nothing below it is the record's.
      missingDirs.add(r.path);
    }
  }
  return { found, changedDirs, at };
}

/**
 * {@link repair} for a directory whose last build is on record: what
 * {@link checkKnown} found (now, or in a check made moments before) is kept
 * where the manifest wants it and removed otherwise; only the directories
 * whose ctime moved (an entry added, removed or renamed) are listed, to
 * delete what the record does not know.
 */
async function repairKnown(
  root: string,
  entries: ManifestEntry[],
  record: BuiltRecord,
  pacer: Pacer,
  early?: Promise<KnownCheck | undefined>,
  checked: (at: number) => void = () => {},
): Promise<Map<string, ManifestEntry>> {
  const check = (await early?.catch(() => undefined)) ?? (await checkKnown(root, record, pacer));
  checked(check.at);
  // Rebuilt to the manifest it was built from: each entry of the record is the one wanted.
  const same = entries === record.entries;
  const { want, parents } = same ? { want: undefined, parents: undefined } : wanted(entries);
  const prefix = root.endsWith("/") ? root : `${root}/`;
  const known = new Set<string>();
  const gone = new Set<string>();
  // The root was renamed into place, which moves its ctime: always listed.
  const listed: string[] = ["", ...check.changedDirs];
  const have = new Map<string, ManifestEntry>();
  for (let i = 0; i < record.entries.length; i++) {
    if (pacer.due()) await pacer.pause();
    const r = record.entries[i] as ManifestEntry;
    const slash = r.path.lastIndexOf("/");
    if (slash !== -1 && gone.has(r.path.slice(0, slash))) {
      gone.add(r.path);
      continue;
    }
    known.add(r.path);
    const h = check.found[i];
    const w = want === undefined ? r : want.get(r.path);
    const keep =
      h === undefined
        ? false
        : h.type === "dir"
          ? w?.type === "dir" || (w === undefined && parents?.has(h.path) === true)
          : w !== undefined && compareEntries(w, h, false);
    if (keep && h) have.set(r.path, h);
    else {
      fs.rmSync(prefix + r.path, { recursive: true, force: true });
      gone.add(r.path);
    }
  }
  for (const dir of listed) {
    if (gone.has(dir)) continue;
    for (const name of fs.readdirSync(dir === "" ? root : prefix + dir)) {
      const rel = dir === "" ? name : `${dir}/${name}`;
      if (known.has(rel)) continue;
      // A name a string cannot stand for: removed by its bytes.
      if (mayBeUndecodable(name) && lstatOrUndefined(prefix + rel) === undefined)
        removeUndecodable(dir === "" ? root : prefix + dir);
      else fs.rmSync(prefix + rel, { recursive: true, force: true });
    }
  }
  return have;
}

function wanted(entries: ManifestEntry[]): {
  want: Map<string, ManifestEntry>;
  parents: Set<string>;
} {
  const want = new Map<string, ManifestEntry>();
  const parents = new Set<string>();
  for (const e of entries) {
    want.set(e.path, e);
    for (let i = e.path.indexOf("/"); i !== -1; i = e.path.indexOf("/", i + 1))
      parents.add(e.path.slice(0, i));
  }
  return { want, parents };
}

/** Copies blobs out of pack files into new files. */
class BlobReader {
  private readonly fds = new Map<string, number>();
  private buf = Buffer.allocUnsafe(64 * 1024);

  constructor(private readonly packs: PackStore) {}

  write(e: FileEntry, abs: string): void {
    const loc = this.packs.get(e.hash);
    if (loc === undefined || loc.size !== e.size) throw missing(e);
    let fd = this.fds.get(loc.pack);
    if (fd === undefined) {
      try {
        fd = fs.openSync(this.packs.packPath(loc.pack), "r");
      } catch (err) {
        throw missing(e, err);
      }
      this.fds.set(loc.pack, fd);
    }
    writeNew(e, abs, (out) => {
      if (this.buf.length < Math.min(e.size, 1024 * 1024))
        this.buf = Buffer.allocUnsafe(Math.min(e.size, 1024 * 1024));
      let done = 0;
      while (done < e.size) {
        const want = Math.min(this.buf.length, e.size - done);
        const n = fs.readSync(fd, this.buf, 0, want, loc.offset + done);
        if (n === 0) throw missing(e);
        writeAll(out, this.buf.subarray(0, n));
        done += n;
      }
    });
  }

  close(): void {
    // Touch each pack used, so pruning by last use spares it.
    const now = Date.now() / 1000;
    for (const fd of this.fds.values()) {
      try {
        fs.futimesSync(fd, now, now);
      } catch {
        // Read-only cache folder: pruning falls back to ingest time.
      }
      fs.closeSync(fd);
    }
    this.fds.clear();
  }
}

// Read once: a file whose mode the umask leaves alone needs no chmod after its creation.
const UMASK = process.umask();

/** Creates a file that must not exist yet (never through a symlink), with the entry's mode and mtime. */
function writeNew(e: FileEntry, abs: string, fill: (fd: number) => void): void {
  // Setuid, setgid and sticky bits never travel.
  const mode = e.mode & 0o777;
  const out = fs.openSync(abs, O_CREATE_NEW, mode);
  try {
    fill(out);
    if ((mode & UMASK) !== 0) fs.fchmodSync(out, mode);
    // The sender's mtime lets diffWorkspace trust size+mtime afterwards.
    if (e.mtimeMs !== undefined) fs.futimesSync(out, e.mtimeMs / 1000, e.mtimeMs / 1000);
  } finally {
    fs.closeSync(out);
  }
}

function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
}

function missing(e: FileEntry, cause?: unknown): WorkspaceError {
  return new WorkspaceError(
    "SLOTH_BLOB_MISSING",
    `cannot materialize ${JSON.stringify(e.path)}: blob ${e.hash} is not in the cache`,
    { cause, details: { entry: e.path, hash: e.hash } },
  );
}
