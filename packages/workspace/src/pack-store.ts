// The cache's storage: blobs appended to pack files (one per ingest) with a
// JSON index beside each. One file per blob would cost a file creation per
// blob on top of the workspace's own, and creating files is the slowest
// part of a transfer on these disks.
import { createHash, type Hash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { WorkspaceError } from "./errors.js";
import { sha256 } from "./hash.js";
import { isHash } from "./manifest.js";
import type { EntryWriter } from "./tar-read.js";

/** Where a blob lives: pack id, byte offset, size. */
export interface BlobLocation {
  pack: string;
  offset: number;
  size: number;
}

interface IndexFile {
  v: 1;
  blobs: [hash: string, offset: number, size: number][];
}

let seq = 0;

/** Packs and their index in a folder; several processes may share it. */
export class PackStore {
  private readonly index = new Map<string, BlobLocation>();
  private readonly loaded = new Set<string>();

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }

  /** The file of a pack. */
  packPath(id: string): string {
    return path.join(this.dir, `${id}.pack`);
  }

  /** Loads indexes written since the last look, by this or another process. */
  refresh(): void {
    const ids = new Set<string>();
    for (const n of fs.readdirSync(this.dir)) if (n.endsWith(".idx")) ids.add(n.slice(0, -4));
    // A pack pruned elsewhere: rebuild rather than serve locations that are gone.
    for (const id of this.loaded) {
      if (!ids.has(id)) {
        this.index.clear();
        this.loaded.clear();
        break;
      }
    }
    for (const id of ids) {
      if (this.loaded.has(id)) continue;
      let file: IndexFile;
      try {
        file = JSON.parse(fs.readFileSync(path.join(this.dir, `${id}.idx`), "utf8")) as IndexFile;
      } catch {
        continue; // Pruned meanwhile or unreadable: its blobs count as missing.
      }
      for (const [hash, offset, size] of file.blobs ?? []) {
        if (isHash(hash) && !this.index.has(hash)) this.index.set(hash, { pack: id, offset, size });
      }
      this.loaded.add(id);
    }
  }

  /** Where a blob is, as of the last refresh. */
  get(hash: string): BlobLocation | undefined {
    return this.index.get(hash);
  }

  /** A new pack to append verified blobs to. */
  append(): PackAppender {
    const id = `${Date.now().toString(36)}-${process.pid}-${++seq}`;
    return new PackAppender(this, id, this.index);
  }

  /** Pack ids with their size and last use, oldest first. */
  list(): { id: string; bytes: number; used: number }[] {
    const out: { id: string; bytes: number; used: number }[] = [];
    for (const n of fs.readdirSync(this.dir)) {
      if (!n.endsWith(".pack")) continue;
      try {
        const st = fs.statSync(path.join(this.dir, n));
        out.push({ id: n.slice(0, -5), bytes: st.size, used: Math.max(st.atimeMs, st.mtimeMs) });
      } catch {
        // Removed by another process meanwhile.
      }
    }
    return out.sort((a, b) => a.used - b.used);
  }

  /** Deletes a pack and its index (index first, so no reader finds a missing pack). */
  remove(id: string): void {
    fs.rmSync(path.join(this.dir, `${id}.idx`), { force: true });
    fs.rmSync(this.packPath(id), { force: true });
    this.refresh();
  }
}

// Small blobs are queued and written in large batches: on these disks a
// write syscall costs about the same for 10 KiB as for 1 MiB. The batches
// are written by the thread pool while the caller goes on parsing and
// building the workspace; a few may be in flight.
const SMALL_BLOB = 1024 * 1024;
const BATCH = 4 * 1024 * 1024;
const IN_FLIGHT = 4;

function writeAll(fd: number, data: Uint8Array, position: number): void {
  let off = 0;
  while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off, position + off);
}

/** Writes buffers at a position, all of them, through the thread pool. */
async function writevAll(fd: number, parts: Uint8Array[], position: number): Promise<void> {
  let total = 0;
  for (const p of parts) total += p.length;
  const done = await new Promise<number>((resolve, reject) =>
    fs.writev(fd, parts, position, (err, n) => (err ? reject(err) : resolve(n))),
  );
  if (done < total)
    await new Promise<void>((resolve, reject) => {
      const rest = Buffer.concat(parts, total).subarray(done);
      try {
        writeAll(fd, rest, position + done);
        resolve();
      } catch (e) {
        reject(e);
      }
    });
}

/** Told of each blob stored: its bytes when it was small enough to be held in memory. */
export type Stored = (hash: string, size: number, data?: Uint8Array) => void;

/** SLOTH_BLOB_MISMATCH unless the content read hashes to its name and has its size. */
function checkBlob(hash: string, size: number, actual: string, written: number): void {
  if (actual === hash && written === size) return;
  throw new WorkspaceError(
    "SLOTH_BLOB_MISMATCH",
    `cannot accept blob ${JSON.stringify(hash)}: its content hashes to ${actual}`,
    { details: { entry: hash, actual, size: written } },
  );
}

/** A small blob: gathered in memory, hashed in one shot, queued for the pack. */
class SmallBlob implements EntryWriter {
  private first: Uint8Array | undefined;
  private parts: Uint8Array[] | undefined;
  private written = 0;

  constructor(
    private readonly pack: PackAppender,
    private readonly hash: string,
    private readonly size: number,
    private readonly stored: Stored | undefined,
  ) {}

  write(chunk: Uint8Array): void {
    if (this.first === undefined) this.first = chunk;
    else if (this.parts === undefined) this.parts = [this.first, chunk];
    else this.parts.push(chunk);
    this.written += chunk.length;
  }

  end(): void {
    const data = this.parts
      ? Buffer.concat(this.parts, this.written)
      : (this.first ?? new Uint8Array(0));
    checkBlob(this.hash, this.size, sha256(data), this.written);
    this.pack.enqueue(this.hash, data);
    this.stored?.(this.hash, this.size, data);
  }

  abort(): void {}
}

/**
 * Appends blobs to one pack; each is checked against its hash before it
 * counts, and becomes visible in the index once its bytes are on disk.
 */
export class PackAppender {
  private fd: number | undefined;
  // Bytes of the pack written or being written.
  private flushed = 0;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private unindexed: IndexFile["blobs"] = [];
  private readonly blobs: IndexFile["blobs"] = [];
  private readonly names = new Set<string>();
  private readonly writing = new Set<Promise<void>>();
  private failure: unknown;

  constructor(
    private readonly store: PackStore,
    readonly id: string,
    private readonly index: Map<string, BlobLocation>,
  ) {}

  /** True when this pack already took the blob. */
  has(hash: string): boolean {
    return this.names.has(hash);
  }

  /**
   * A writer for one blob; `end` throws SLOTH_BLOB_MISMATCH when the content
   * is not `hash`, else calls `stored` with the blob and its bytes (small
   * blobs, kept in memory) or without (large ones, already in the pack).
   */
  blob(hash: string, size: number, stored?: Stored): EntryWriter {
    // Held whole in memory anyway: hashed in one shot at the end.
    if (size <= SMALL_BLOB) return new SmallBlob(this, hash, size, stored);
    let written = 0;
    const h: Hash = createHash("sha256");
    this.flush();
    const fd = this.open();
    const start = this.flushed;
    const rewind = () => {
      fs.ftruncateSync(fd, start);
      this.flushed = start;
    };
    return {
      write: (chunk) => {
        h.update(chunk);
        writeAll(fd, chunk, this.flushed);
        this.flushed += chunk.length;
        written += chunk.length;
      },
      end: () => {
        try {
          checkBlob(hash, size, h.digest("hex"), written);
        } catch (e) {
          rewind();
          throw e;
        }
        this.record([hash, start, size]);
        stored?.(hash, size);
      },
      abort: rewind,
    };
  }

  /** Resolves when few enough batches are in flight to queue more; undefined when none wait. */
  ready(): Promise<void> | undefined {
    if (this.writing.size < IN_FLIGHT) return undefined;
    return Promise.race(this.writing).then(() => {});
  }

  private open(): number {
    this.fd ??= fs.openSync(this.store.packPath(this.id), "wx", 0o444);
    return this.fd;
  }

  /** Queues a verified small blob for the next batch write (for {@link SmallBlob}). */
  enqueue(hash: string, data: Uint8Array): void {
    this.unindexed.push([hash, this.flushed + this.queued, data.length]);
    this.names.add(hash);
    this.queue.push(data);
    this.queued += data.length;
    if (this.queued >= BATCH) this.flush();
  }

  private record(blob: IndexFile["blobs"][number]): void {
    const [hash, offset, size] = blob;
    this.blobs.push(blob);
    this.names.add(hash);
    this.index.set(hash, { pack: this.id, offset, size });
  }

  /**
   * Starts writing the queued small blobs; they become visible in this
   * process once written (a build reading the pack meanwhile waits for them).
   */
  flush(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.unindexed.length === 0) return;
    const fd = this.open();
    const parts = this.queue;
    const blobs = this.unindexed;
    const at = this.flushed;
    this.flushed += this.queued;
    this.queue = [];
    this.queued = 0;
    this.unindexed = [];
    const w = writevAll(fd, parts, at).then(
      () => {
        for (const b of blobs) this.record(b);
      },
      (e: unknown) => {
        this.failure ??= e;
      },
    );
    this.writing.add(w);
    void w.then(() => this.writing.delete(w));
  }

  /**
   * Makes the verified blobs durable and visible to other processes: the
   * pack is flushed before its index appears, so an index never outlives
   * its data after a crash.
   */
  async commit(): Promise<void> {
    try {
      this.flush();
    } catch {
      // Reported below, after what was written is made durable.
    }
    await Promise.all(this.writing);
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) {
      if (this.blobs.length === 0) {
        fs.closeSync(fd);
        fs.rmSync(this.store.packPath(this.id), { force: true });
      } else {
        try {
          await new Promise<void>((resolve, reject) =>
            fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())),
          );
        } finally {
          fs.closeSync(fd);
        }
        this.writeIndex();
      }
    }
    if (this.failure !== undefined) throw this.failure;
  }

  private writeIndex(): void {
    const idx = path.join(this.store.dir, `${this.id}.idx`);
    const body: IndexFile = { v: 1, blobs: this.blobs };
    fs.writeFileSync(`${idx}.tmp`, JSON.stringify(body));
    fs.renameSync(`${idx}.tmp`, idx);
  }
}
