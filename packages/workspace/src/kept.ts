// The bytes a scan read to hash small files, kept for the pack that follows
// (the blobs of a first sync, the changes after a task), so each file is
// read once rather than twice. Kept per manifest or change list, under one
// budget for the whole process, and released when packed, when the caller
// says so, or when what they describe is garbage-collected.

/** Content kept for one manifest or change list, by path. */
export interface Kept {
  files: Map<string, Buffer>;
  /** Bytes still held, shared with the finalizer. */
  held: { bytes: number };
}

/** Most bytes kept at once by the whole process. */
const BUDGET = 256 * 1024 * 1024;
/** Larger files are read again when packed. */
export const KEEP_FILE_MAX = 1024 * 1024;

let keptBytes = 0;
const byOwner = new WeakMap<object, Kept>();
// A manifest dropped without being packed or released gives its bytes back.
const finalizer = new FinalizationRegistry<{ bytes: number }>((held) => {
  keptBytes -= held.bytes;
  held.bytes = 0;
});

/** Content kept by one scan. */
export function collect(): Kept {
  return { files: new Map(), held: { bytes: 0 } };
}

/** True when a file of `size` bytes may be kept now. */
export function room(size: number): boolean {
  return size <= KEEP_FILE_MAX && keptBytes + size <= BUDGET;
}

/** Keeps one file's bytes. */
export function add(kept: Kept, p: string, data: Buffer): void {
  const before = kept.files.get(p);
  if (before !== undefined) release(kept, before.length);
  kept.files.set(p, data);
  kept.held.bytes += data.length;
  keptBytes += data.length;
}

function release(kept: Kept, bytes: number): void {
  kept.held.bytes -= bytes;
  keptBytes -= bytes;
}

/** Attaches kept content to the object it describes (a manifest, a change list). */
export function attach(owner: object, kept: Kept): void {
  if (kept.files.size === 0) return;
  byOwner.set(owner, kept);
  finalizer.register(owner, kept.held, kept);
}

/** Takes the content kept for `owner`; the caller frees it (see {@link free}). */
export function take(owner: object): Kept | undefined {
  const kept = byOwner.get(owner);
  if (kept === undefined) return undefined;
  byOwner.delete(owner);
  finalizer.unregister(kept);
  return kept;
}

/** Removes one path's bytes and returns them. */
export function pick(kept: Kept | undefined, p: string): Buffer | undefined {
  const data = kept?.files.get(p);
  if (kept === undefined || data === undefined) return undefined;
  kept.files.delete(p);
  release(kept, data.length);
  return data;
}

/** Gives back what `kept` still holds. */
export function free(kept: Kept | undefined): void {
  if (kept === undefined) return;
  release(kept, kept.held.bytes);
  kept.files.clear();
}

/**
 * Releases the file content a scan kept for a manifest (`keepContent`), or
 * diffWorkspace for a change list, that will not be packed: packBlobs and
 * packChanges release it themselves once they have run.
 */
export function releaseContent(owner: object): void {
  free(take(owner));
}
