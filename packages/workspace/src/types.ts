/** A regular file of a workspace. */
export interface FileEntry {
  path: string;
  type: "file";
  /** Permission bits (`mode & 0o777`). */
  mode: number;
  size: number;
  /** sha256 of the content, lowercase hex. */
  hash: string;
  /**
   * Modification time in whole milliseconds, when it can be trusted to detect
   * a later change (absent for files modified just before the scan, which a
   * second write in the same clock tick could change unnoticed).
   */
  mtimeMs?: number;
}

/** A directory of a workspace (listed so empty directories and modes travel). */
export interface DirEntry {
  path: string;
  type: "dir";
  mode: number;
}

/** A symbolic link whose target resolves inside the workspace. */
export interface SymlinkEntry {
  path: string;
  type: "symlink";
  /** Relative, normalised POSIX target; `..` only as leading segments. */
  target: string;
}

/** One entry of a workspace; paths are POSIX, relative, never "..", never absolute. */
export type ManifestEntry = FileEntry | DirEntry | SymlinkEntry;

/** The entries of a workspace, parents before children, sorted by path. */
export interface Manifest {
  entries: ManifestEntry[];
  /** Sum of the file sizes. */
  totalBytes: number;
}

/**
 * The folders a manifest was made from, so a later scan can trust their
 * listings (see `reuseListings`). Plain data: it may be kept as JSON.
 */
export interface Folders {
  /** `device:inode:ctimeMs` of each folder, by path ("" for the root). */
  ids: Record<string, string>;
  /** The exclusions of the scan that made it; absent for a tree built from the manifest. */
  exclusions?: string;
  /** The scan that made it left symlinks pointing outside out (`outsideSymlinks: "skip"`). */
  skippedOutside?: boolean;
}

/** What {@link scanWorkspace} and {@link diffWorkspace} include. */
export interface ScanOptions {
  /** Extra exclusions in gitignore syntax (`"node_modules/"`, `"*.log"`, `"/build"`). */
  exclude?: string[];
  /** Ignore file read from the workspace root, gitignore syntax. Default ".slothignore". */
  ignoreFile?: string;
  /** Also send `.git` (excluded by default). Default false. */
  includeGit?: boolean;
  /** Refuse a workspace whose files add up to more than this many bytes. Default: no limit. */
  maxBytes?: number;
  /**
   * A symlink pointing outside the workspace (or absolute): "error" (default)
   * refuses the scan naming it; "skip" leaves it out.
   */
  outsideSymlinks?: "error" | "skip";
  /**
   * A previous manifest of the same directory: files whose size and mtime
   * match keep its hash instead of being read again.
   */
  reuse?: Manifest;
  /**
   * With a `reuse` manifest kept from another process (an earlier run): a
   * hash is kept only for a file whose ctime, which no process can set back,
   * is older than this Date.now() value (when the scan that made `reuse`
   * started), so a file rewritten since with its old size and mtime is read
   * again.
   */
  reuseUntouchedBefore?: number;
  /**
   * With `reuse` and `reuseUntouchedBefore`: what `reuse` was made from
   * (foldersOf for a scan, readFolders for a tree built from it). A folder
   * that is still the same one (device and inode) with the ctime recorded
   * then, older than `reuseUntouchedBefore` (no entry added, removed or
   * renamed in it since), is not listed again: its entries are those `reuse`
   * lists there, each still checked. Files in a folder that is not the same
   * one are read again. Listings are not reused when the exclusions differ
   * from those `reuse` was made with, nor for a scan refusing outside
   * symlinks when `reuse` was made leaving them out. A record in another
   * form is ignored (the scan then reads everything).
   */
  reuseListings?: Folders;
  /**
   * Keep the bytes of the small files (up to 1 MiB) the scan reads, within a
   * budget of 256 MiB for the process, so that packBlobs (or packChanges,
   * after diffWorkspace) sends them without reading them again, exactly as
   * hashed. Released once packed, or by releaseContent. Default false.
   */
  keepContent?: boolean;
}

/** After a task: what changed relative to a base manifest. */
export interface Changes {
  /** Added or modified entries (content, mode, symlink target, type). */
  changed: ManifestEntry[];
  /** Paths of the base that are gone, children before their parents. */
  deleted: string[];
  /** Paths left out by diffWorkspace: symlinks leaving the tree, sockets, fifos, devices. */
  skipped?: string[];
}
