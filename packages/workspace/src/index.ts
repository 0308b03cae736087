export { type ApplyOptions, applyChanges } from "./apply.js";
export {
  BlobCache,
  type BlobCacheOptions,
  type BuildResult,
  type IngestOptions,
  type MaterializeOptions,
  type WorkspaceBuild,
} from "./blob-cache.js";
export { compareManifests, diffWorkspace } from "./diff.js";
export {
  isWorkspaceError,
  WorkspaceError,
  type WorkspaceErrorCode,
  type WorkspaceErrorOptions,
} from "./errors.js";
export { releaseContent } from "./kept.js";
export { checkManifest, sameManifest } from "./manifest.js";
export { type BlobPackOptions, type PackOptions, packBlobs, packChanges } from "./pack.js";
export { rechunk } from "./rechunk.js";
export { foldersOf, readFolders, scanWorkspace } from "./scan.js";
export type { ReadOptions } from "./tar-read.js";
export type {
  Changes,
  DirEntry,
  FileEntry,
  Folders,
  Manifest,
  ManifestEntry,
  ScanOptions,
  SymlinkEntry,
} from "./types.js";
