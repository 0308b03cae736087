import fs from "node:fs";
import path from "node:path";
import { WorkspaceError } from "./errors.js";
import { createExclusions, type Excluder } from "./exclude.js";
import { hashFile } from "./hash.js";
import { add, attach, collect, free, type Kept, room } from "./kept.js";
import { Pacer } from "./pacer.js";
import { normaliseTarget } from "./paths.js";
import { type Hashed, type HashJob, ParallelHasher } from "./scan-hasher.js";
import type { FileEntry, Folders, Manifest, ManifestEntry, ScanOptions } from "./types.js";
import { mayBeUndecodable } from "./undecodable.js";

// A file modified this close to the scan could change again within the same
// clock tick without its mtime moving; such files get no mtime and are
// re-hashed next time instead of trusted.
const RACY_MS = 100;

/** What a scan left out, for callers that must know. */
export interface ScanAll {
  /**
   * Collects symlinks leaving the tree, sockets, fifos, devices and names
   * that are not valid UTF-8 (with U+FFFD for the bad bytes) instead of
   * refusing them.
   */
  others: string[];
  /** Ignore every exclusion (repairing a recycled directory must see everything). */
  all?: boolean;
}

interface Walk {
  root: string;
  /** `root` with a trailing slash: entry names come from readdir, so joining is concatenation. */
  prefix: string;
  all: ScanAll | undefined;
  excluded: Excluder;
  options: ScanOptions;
  reuse: Map<string, FileEntry>;
  startMs: number;
  entries: ManifestEntry[];
  totalBytes: number;
  pacer: Pacer;
  /** With `keepContent`: the bytes of the small files it read. */
  kept: Kept | undefined;
  /** With `reuseListings`: the entries `reuse` lists in each directory, in order. */
  listings: Map<string, Listed[]> | undefined;
  /** The folders `reuse` was made from, when their listings may be trusted. */
  trust: Folders | undefined;
  /** The folders of this scan, for the next one. */
  folders: Record<string, string>;
  /** Files to read and hash, queued as the walk finds them. */
  hasher: ParallelHasher;
  /** The entry of each queued file, and what its hash decides. */
  pending: Pending[];
  /** Set when the scan failed: late results from the helper are dropped. */
  failed: boolean;
}

interface Pending {
  entry: FileEntry;
  /** The size lstat gave. */
  size: number;
  mtimeMs: number;
  trusted: boolean;
}

/** An entry of a directory: its name, and whether it is a directory. */
interface Listed {
  name: string;
  dir: boolean;
}

/** Code-unit order, so manifests are identical whatever the locale. */
const byName = (a: fs.Dirent, b: fs.Dirent) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * Lists a workspace: directories, files with their sha256, and symlinks that
 * stay inside it; `.git` and the exclusions left out; sockets, fifos and
 * devices skipped. Reads synchronously (one await per file would dominate),
 * letting the event loop run every few milliseconds.
 */
export async function scanWorkspace(dir: string, options: ScanOptions = {}): Promise<Manifest> {
  return scanTree(dir, options);
}

/** {@link scanWorkspace} with a report of what was left out, or with no exclusions at all. */
export async function scanTree(
  dir: string,
  options: ScanOptions = {},
  all?: ScanAll,
): Promise<Manifest> {
  const root = path.resolve(dir);
  const st = fs.statSync(root);
  if (!st.isDirectory())
    throw new WorkspaceError("SLOTH_INVALID_ARGUMENT", `cannot scan ${dir}: not a directory`);
  const reuse = new Map<string, FileEntry>();
  for (const e of options.reuse?.entries ?? []) if (e.type === "file") reuse.set(e.path, e);
  const exclusions = all?.all ? undefined : createExclusions(root, options);
  const given = options.reuseListings;
  const trust =
    given &&
    typeof given.ids === "object" &&
    given.ids !== null &&
    options.reuse &&
    options.reuseUntouchedBefore !== undefined &&
    // Repairing a directory must see every entry. (A trusted folder of a
    // built tree holds no entry a diff would report as left out: the build
    // made none.)
    !all?.all &&
    (given.exclusions === undefined || given.exclusions === exclusions?.key) &&
    // A listing that left outside symlinks out would hide them from a scan refusing them.
    !(given.skippedOutside === true && options.outsideSymlinks !== "skip")
      ? given
      : undefined;
  const listings = trust && options.reuse ? listingsOf(options.reuse) : undefined;
  const w: Walk = {
    root,
    prefix: root.endsWith("/") ? root : `${root}/`,
    all,
    excluded: exclusions?.excluded ?? (() => false),
    options,
    reuse,
    startMs: Date.now(),
    entries: [],
    totalBytes: 0,
    pacer: new Pacer(),
    kept: options.keepContent ? collect() : undefined,
    listings,
    trust,
    folders: {},
    hasher: undefined as unknown as ParallelHasher,
    pending: [],
    failed: false,
  };
  w.hasher = new ParallelHasher(
    (job: HashJob) => hashFile(job.abs, job.size, job.keep),
    (index: number, r: Hashed) => hashed(w, w.pending[index] as Pending, r),
  );
  try {
    await walk(w, "", st);
    await w.hasher.finish();
  } catch (e) {
    w.failed = true;
    free(w.kept);
    throw e;
  }
  const manifest: Manifest = { entries: w.entries, totalBytes: w.totalBytes };
  if (w.kept) attach(manifest, w.kept);
  if (exclusions)
    madeFrom.set(manifest, {
      ids: w.folders,
      exclusions: exclusions.key,
      ...(options.outsideSymlinks === "skip" ? { skippedOutside: true } : {}),
    });
  return manifest;
}

/**
 * The entries of each directory of `m` ("" the root), sorted as a walk lists
 * them. A directory holding an entry whose parent `m` does not list as a
 * directory gets no listing, nor do its ancestors: they are read.
 */
function listingsOf(m: Manifest): Map<string, Listed[]> {
  const out = new Map<string, Listed[]>([["", []]]);
  for (const e of m.entries) if (e.type === "dir") out.set(e.path, []);
  const broken = new Set<string>();
  for (const e of m.entries) {
    const slash = e.path.lastIndexOf("/");
    const parent = slash === -1 ? "" : e.path.slice(0, slash);
    const list = out.get(parent);
    if (list !== undefined) list.push({ name: e.path.slice(slash + 1), dir: e.type === "dir" });
    else
      for (let p = parent; ; p = p.slice(0, Math.max(0, p.lastIndexOf("/")))) {
        broken.add(p);
        if (p === "") break;
      }
  }
  for (const p of broken) out.delete(p);
  for (const list of out.values()) list.sort(byListedName);
  return out;
}

const byListedName = (a: Listed, b: Listed) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** A folder's device and inode, and its ctime: `dev:ino:ctimeMs`. */
const idOf = (st: fs.Stats) => `${st.dev}:${st.ino}:${st.ctimeMs}`;

/** True when `recorded` (an idOf) names the same folder as `st`, whatever its ctime. */
const sameFolder = (recorded: unknown, st: fs.Stats) =>
  typeof recorded === "string" && recorded.startsWith(`${st.dev}:${st.ino}:`);

/**
 * True when a time is safely older than `before`: by more than RACY_MS, or
 * by a whole second more when it is a whole second (a file system keeping
 * seconds only rounds times down by up to one).
 */
export function olderThan(ms: number, before: number): boolean {
  // Two seconds: FAT keeps even seconds only.
  return ms < before - (ms % 1000 === 0 ? 2000 + RACY_MS : RACY_MS);
}

/** The entries of a directory: from `reuse` when it is the same and untouched since, else read. */
function list(w: Walk, relDir: string, st: fs.Stats): Listed[] {
  const before = w.options.reuseUntouchedBefore;
  w.folders[relDir] = idOf(st);
  if (
    w.listings &&
    before !== undefined &&
    // The same folder with the same ctime as recorded (whatever the clocks
    // say), and that ctime older than the scan that listed it.
    w.trust?.ids?.[relDir] === idOf(st) &&
    olderThan(st.ctimeMs, before)
  ) {
    const known = w.listings.get(relDir);
    if (known !== undefined) return known;
  }
  return fs
    .readdirSync(relDir === "" ? w.root : w.prefix + relDir, { withFileTypes: true })
    .sort(byName)
    .map((d) => ({ name: d.name, dir: d.isDirectory() }));
}

const madeFrom = new WeakMap<Manifest, Folders>();

/**
 * The folders a manifest made by a scan in this process was read from (for
 * the next scan's `reuseListings`); undefined for other manifests.
 */
export function foldersOf(manifest: Manifest): Folders | undefined {
  return madeFrom.get(manifest);
}

/**
 * The folders of `dir`, a tree just built from `manifest` (for a later
 * diff's `reuseListings`); a folder that is missing, not a directory or
 * unreadable is left out, and so never trusted.
 */
export function readFolders(dir: string, manifest: Manifest): Folders {
  const root = path.resolve(dir);
  const ids: Record<string, string> = {};
  const stat = (p: string, follow: boolean) => {
    try {
      return follow ? fs.statSync(p) : fs.lstatSync(p);
    } catch {
      return undefined;
    }
  };
  const rootSt = stat(root, true);
  if (rootSt?.isDirectory()) ids[""] = idOf(rootSt);
  for (const e of manifest.entries) {
    if (e.type !== "dir") continue;
    const st = stat(path.join(root, e.path), false);
    if (st?.isDirectory()) ids[e.path] = idOf(st);
  }
  return { ids };
}

async function walk(w: Walk, relDir: string, dirSt: fs.Stats): Promise<void> {
  // Another folder now at this path (moved here, or the root re-pointed):
  // the hashes `reuse` has for its files are not trusted.
  const given = w.options.reuseListings;
  const ids = typeof given?.ids === "object" && given.ids !== null ? given.ids : undefined;
  // A record it cannot read: no hash is trusted on its word.
  const same = given === undefined || sameFolder(ids?.[relDir], dirSt);
  for (const d of list(w, relDir, dirSt)) {
    if (w.pacer.due()) await w.pacer.pause();
    const rel = relDir === "" ? d.name : `${relDir}/${d.name}`;
    if (w.excluded(rel, d.dir)) continue;
    const abs = w.prefix + rel;
    const st = fs.lstatSync(abs, { throwIfNoEntry: false });
    if (st === undefined) {
      // A name that is not valid UTF-8 comes back from readdir mangled (U+FFFD):
      // reported with the others when asked, else refused.
      if (mayBeUndecodable(d.name) && w.all) {
        w.all.others.push(rel);
        continue;
      }
      if (mayBeUndecodable(d.name))
        throw new WorkspaceError(
          "SLOTH_INVALID_ARGUMENT",
          `cannot send ${JSON.stringify(rel)}: its name is not valid UTF-8`,
          { details: { entry: rel }, hint: "rename it, or exclude it (.slothignore)" },
        );
      // Deleted while the scan ran: not part of the workspace any more.
      continue;
    }
    if (st.isDirectory()) {
      w.entries.push({ path: rel, type: "dir", mode: st.mode & 0o777 });
      await walk(w, rel, st);
    } else if (st.isFile()) {
      w.entries.push(fileEntry(w, rel, abs, st, same));
    } else if (st.isSymbolicLink()) {
      const raw = fs.readlinkSync(abs);
      const target = normaliseTarget(rel, raw);
      if (target !== undefined) w.entries.push({ path: rel, type: "symlink", target });
      else if (w.all) w.all.others.push(rel);
      else if (w.options.outsideSymlinks !== "skip")
        throw new WorkspaceError(
          "SLOTH_ARCHIVE_UNSAFE",
          `cannot send symlink ${JSON.stringify(rel)}: it points outside the workspace (${raw})`,
          {
            details: { entry: rel, target: raw },
            hint: 'exclude it (a .slothignore line, or workspace = { exclude = {...} } in a workflow; outsideSymlinks: "skip" in the API)',
          },
        );
    } else {
      // Sockets, fifos and devices cannot be meaningfully copied: skipped.
      w.all?.others.push(rel);
    }
  }
}

function fileEntry(
  w: Walk,
  rel: string,
  abs: string,
  st: fs.Stats,
  sameFolder: boolean,
): FileEntry {
  w.totalBytes += st.size;
  const max = w.options.maxBytes;
  if (max !== undefined && w.totalBytes > max)
    throw new WorkspaceError(
      "SLOTH_WORKSPACE_TOO_LARGE",
      `cannot send the workspace: it holds more than the limit of ${max} bytes (over ${w.totalBytes} bytes by ${JSON.stringify(rel)})`,
      {
        details: { bytes: w.totalBytes, limit: max, entry: rel },
        hint: "raise the limit (--workspace-limit) or exclude files (workspace = { exclude = ... }, .slothignore)",
      },
    );
  const mode = st.mode & 0o777;
  // Rounded, not floored: a time set through utimes in seconds comes back a hair under.
  const mtimeMs = Math.round(st.mtimeMs);
  const trusted = olderThan(mtimeMs, w.startMs);
  const prev = w.reuse.get(rel);
  const before = w.options.reuseUntouchedBefore;
  if (
    prev &&
    sameFolder &&
    trusted &&
    prev.mtimeMs === mtimeMs &&
    prev.size === st.size &&
    (before === undefined || olderThan(st.ctimeMs, before))
  )
    return { path: rel, type: "file", mode, size: st.size, hash: prev.hash, mtimeMs };
  // Read and hashed once the walk has queued it (here, or on the helper thread).
  const e: FileEntry = { path: rel, type: "file", mode, size: st.size, hash: "" };
  const keep = w.kept !== undefined && room(st.size);
  w.pending.push({ entry: e, size: st.size, mtimeMs, trusted });
  w.hasher.add({ abs, size: st.size, keep });
  return e;
}

/** Completes a queued file's entry with what reading it gave. */
function hashed(w: Walk, p: Pending, r: Hashed): void {
  if (w.failed) return;
  const e = p.entry;
  if (r.data !== undefined && w.kept && room(r.data.length)) add(w.kept, e.path, r.data);
  // The file grew or shrank while read: the bytes hashed are what counts.
  w.totalBytes += r.size - p.size;
  e.hash = r.hash;
  e.size = r.size;
  if (p.trusted && r.size === p.size) e.mtimeMs = p.mtimeMs;
}
