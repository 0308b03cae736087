// Runs a producer that adds entries to a tar-stream pack and hands the
// archive out as an AsyncIterable of chunks of at least CHUNK bytes (small
// headers and files coalesced), so an RPC stream carries few large messages;
// a piece that large on its own is handed out as it is, never copied.
import fs from "node:fs";
import { createGzip } from "node:zlib";
import tar from "tar-stream";
import type { HeaderSpec } from "./tar-header.js";

const CHUNK = 256 * 1024;
/**
 * The pax keyword of a bundle: an entry holding several blobs back to back,
 * listed as `HASH:SIZE` separated by commas, in order.
 */
export const BUNDLE_PAX = "SLOTH.blobs";
const WHOLE_FILE_MAX = 4 * 1024 * 1024;
const READ_CHUNK = 1024 * 1024;
// Entries are handed to the pack without waiting for each one; waiting
// happens once this many bytes are queued (one await per file is too slow).
const QUEUE_BYTES = 4 * 1024 * 1024;

/** How a pack is written. */
export interface PackOptions {
  /** gzip the archive. Default false: on a fast link gzip costs more time than it saves. */
  gzip?: boolean;
  /** gzip level 1–9 when `gzip`. Default 1 (level 6 is several times slower for little gain). */
  gzipLevel?: number;
}

/** Adds entries to a pack with bounded memory. */
export class PackWriter {
  private queued = 0;
  private last: Promise<void> = Promise.resolve();
  private error: Error | undefined;

  constructor(private readonly pack: tar.Pack) {}

  /** Adds an entry without content (directory, symlink). */
  async meta(spec: Omit<HeaderSpec, "size">): Promise<void> {
    this.pack.entry({ ...spec, mode: wireMode(spec.mode ?? 0o755), mtime: EPOCH });
  }

  /** Adds a file read from `abs`, checking it still has `size` bytes. */
  async file(name: string, abs: string, size: number, mode: number): Promise<number> {
    if (size > WHOLE_FILE_MAX) return this.largeFile(name, abs, size, mode);
    return this.data(name, this.read(abs, size), mode);
  }

  /**
   * Adds blobs as one entry: their bytes one after another, their hashes and
   * sizes in the entry's pax record (see {@link BUNDLE_PAX}).
   */
  async bundle(name: string, blobs: { hash: string; data: Uint8Array }[]): Promise<number> {
    const list = blobs.map((b) => `${b.hash}:${b.data.length}`).join(",");
    const data = Buffer.concat(blobs.map((b) => b.data));
    return this.entry(
      {
        name,
        type: "file",
        mode: 0o644,
        size: data.length,
        mtime: EPOCH,
        pax: { [BUNDLE_PAX]: list },
      },
      data,
    );
  }

  /** Reads a whole file of `size` bytes (at most a few MiB), checking its size did not move. */
  read(abs: string, size: number): Buffer {
    const data = fs.readFileSync(abs);
    if (data.length !== size) throw new FileChanged(abs);
    return data;
  }

  /** Adds a file whose content is in memory. */
  async data(name: string, data: Uint8Array, mode: number): Promise<number> {
    return this.entry(
      { name, type: "file", mode: wireMode(mode), size: data.length, mtime: EPOCH },
      data,
    );
  }

  private async entry(
    header: Partial<tar.Header> & { name: string },
    data: Uint8Array,
  ): Promise<number> {
    const size = data.length;
    this.last = new Promise((resolve) => {
      this.pack.entry(header, data as Buffer, (err) => {
        if (err) this.error ??= err;
        resolve();
      });
    });
    this.queued += size + 1024;
    if (this.queued >= QUEUE_BYTES) await this.flush();
    return size;
  }

  /** Waits until everything handed over has been taken by the reader. */
  async flush(): Promise<void> {
    await this.last;
    this.queued = 0;
    if (this.error) throw this.error;
  }

  private async largeFile(name: string, abs: string, size: number, mode: number): Promise<number> {
    await this.flush();
    const fd = fs.openSync(abs, "r");
    try {
      if (fs.fstatSync(fd).size !== size) throw new FileChanged(abs);
      let done!: Promise<void>;
      const sink = (() => {
        let s!: ReturnType<tar.Pack["entry"]>;
        done = new Promise((resolve, reject) => {
          s = this.pack.entry(
            { name, type: "file", mode: wireMode(mode), size, mtime: EPOCH },
            (err) => (err ? reject(err) : resolve()),
          );
        });
        return s;
      })();
      // Awaited below on success; on a failure the pack's own error is reported.
      done.catch(() => {});
      let left = size;
      while (left > 0) {
        const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, left));
        const n = fs.readSync(fd, buf, 0, buf.length, null);
        if (n === 0) throw new FileChanged(abs);
        left -= n;
        if (!sink.write(buf.subarray(0, n))) await drained(sink);
      }
      sink.end(undefined);
      await done;
      return size;
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Resolves when a sink can take more; rejects once it is destroyed. */
function drained(sink: ReturnType<tar.Pack["entry"]>): Promise<void> {
  if (sink.destroyed) return Promise.reject(new Error("tar entry destroyed"));
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      sink.off("close", onClose);
      resolve();
    };
    const onClose = () => {
      sink.off("drain", onDrain);
      reject(new Error("tar entry destroyed"));
    };
    sink.once("drain", onDrain);
    sink.once("close", onClose);
  });
}

/** Thrown by {@link PackWriter.file} when a file's size moved since the scan. */
export class FileChanged extends Error {
  constructor(readonly file: string) {
    super(`file changed while packing: ${file}`);
  }
}

/**
 * tar-stream replaces a mode of 0 by its default (0644/0755); a bit above
 * the 12 it writes keeps a real 0 (a `chmod 000` file) as 0 in the header.
 */
function wireMode(mode: number): number {
  return (mode & 0o7777) === 0 ? 0o10000 : mode;
}

// Content is addressed by hash and modes travel in headers; mtimes do not.
const EPOCH = new Date(0);

/** Runs `produce` against a new pack; yields the archive in chunks. */
export async function* writeTar(
  produce: (w: PackWriter) => Promise<void>,
  options: PackOptions = {},
): AsyncGenerator<Uint8Array> {
  const pack = tar.pack({ highWaterMark: 1024 * 1024 });
  let failure: unknown;
  const writer = new PackWriter(pack);
  const producing = produce(writer)
    .then(() => writer.flush())
    .then(
      () => pack.finalize(),
      (e: unknown) => {
        failure = e;
        pack.destroy(e instanceof Error ? e : new Error(String(e)));
      },
    );
  let source = pack as AsyncIterable<Uint8Array>;
  let gz: ReturnType<typeof createGzip> | undefined;
  if (options.gzip) {
    const z = createGzip({ level: options.gzipLevel ?? 1 });
    pack.on("error", (e: Error) => z.destroy(e));
    source = pack.pipe(z);
    gz = z;
  }
  let parts: Uint8Array[] = [];
  let bytes = 0;
  try {
    for await (const chunk of source) {
      // A large piece (a bundle, a large file's read) goes as it is, not copied.
      if (chunk.length >= CHUNK) {
        if (bytes > 0)
          yield parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts, bytes);
        parts = [];
        bytes = 0;
        yield chunk;
        continue;
      }
      parts.push(chunk);
      bytes += chunk.length;
      if (bytes >= CHUNK) {
        yield parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts, bytes);
        parts = [];
        bytes = 0;
      }
    }
    if (bytes > 0) yield Buffer.concat(parts, bytes);
  } catch (e) {
    throw failure ?? e;
  } finally {
    if (!pack.destroyed) pack.destroy();
    gz?.destroy();
    await producing;
  }
  if (failure !== undefined) throw failure;
}
