// Runs a producer that adds entries to a tar archive and hands the archive
// out as an AsyncIterable of 1 MiB chunks. Headers are written and files
// read straight into the chunk being filled (no stream or copy per entry),
// so an RPC stream carries few large messages and a 10,000-file workspace
// costs little more than reading its files.
import fs from "node:fs";
import { Readable } from "node:stream";
import { createGzip } from "node:zlib";
import { BLOCK, type HeaderSpec, headerLength, padded, writeHeader } from "./tar-header.js";

const OUT = 1024 * 1024;
// Chunks handed out but not yet taken by the reader before the producer waits.
const AHEAD = 4;

/** How a pack is written. */
export interface PackOptions {
  /** gzip the archive. Default false: on a fast link gzip costs more time than it saves. */
  gzip?: boolean;
  /** gzip level 1–9 when `gzip`. Default 1 (level 6 is several times slower for little gain). */
  gzipLevel?: number;
}

/** Adds entries to an archive with bounded memory. */
export class PackWriter {
  private out = Buffer.allocUnsafe(OUT);
  private pos = 0;
  private readonly ready: Buffer[] = [];
  private wake: (() => void) | undefined;
  private taken: (() => void) | undefined;
  closed = false;

  /** Adds an entry without content (directory, symlink). */
  async meta(spec: Omit<HeaderSpec, "size">): Promise<void> {
    await this.header({ ...spec, size: 0 });
  }

  /** Adds a file read from `abs`, checking it still has `size` bytes. */
  async file(name: string, abs: string, size: number, mode: number): Promise<number> {
    const fd = fs.openSync(abs, "r");
    try {
      if (fs.fstatSync(fd).size !== size) throw new FileChanged(abs);
      await this.header({ name, type: "file", mode, size });
      let left = size;
      while (left > 0) {
        if (this.pos === OUT) await this.emit();
        const want = Math.min(left, OUT - this.pos);
        const n = fs.readSync(fd, this.out, this.pos, want, size - left);
        if (n === 0) throw new FileChanged(abs);
        this.pos += n;
        left -= n;
      }
      await this.zeros(padded(size) - size);
      return size;
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Writes the end-of-archive blocks and hands out the last chunk. */
  async end(): Promise<void> {
    await this.zeros(2 * BLOCK);
    if (this.pos > 0) await this.emit();
    this.closed = true;
    this.wake?.();
  }

  /** The next chunk for the reader; undefined once the archive is complete. */
  async next(): Promise<Buffer | undefined> {
    for (;;) {
      const c = this.ready.shift();
      if (c !== undefined) {
        this.taken?.();
        return c;
      }
      if (this.closed) return undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }

  /** Ends the archive early: the producer failed, or the reader went away. */
  cancel(): void {
    this.closed = true;
    this.ready.length = 0;
    this.taken?.();
    this.wake?.();
  }

  private async header(spec: HeaderSpec): Promise<void> {
    const len = headerLength(spec);
    if (len > OUT) throw new Error(`tar header too long for ${spec.name.slice(0, 100)}`);
    if (OUT - this.pos < len) await this.emit();
    this.pos = writeHeader(this.out, this.pos, spec);
  }

  private async zeros(n: number): Promise<void> {
    while (n > 0) {
      if (this.pos === OUT) await this.emit();
      const k = Math.min(n, OUT - this.pos);
      this.out.fill(0, this.pos, this.pos + k);
      this.pos += k;
      n -= k;
    }
  }

  /** Hands the filled part of the chunk to the reader; waits when it is far behind. */
  private async emit(): Promise<void> {
    if (this.closed) throw new Error("the archive's reader went away");
    this.ready.push(this.pos === OUT ? this.out : this.out.subarray(0, this.pos));
    this.out = Buffer.allocUnsafe(OUT);
    this.pos = 0;
    this.wake?.();
    while (this.ready.length >= AHEAD && !this.closed) {
      await new Promise<void>((resolve) => {
        this.taken = resolve;
      });
      this.taken = undefined;
    }
  }
}

/** Thrown by {@link PackWriter.file} when a file's size moved since the scan. */
export class FileChanged extends Error {
  constructor(readonly file: string) {
    super(`file changed while packing: ${file}`);
  }
}

/** Runs `produce` against a new archive; yields it in chunks. */
export async function* writeTar(
  produce: (w: PackWriter) => Promise<void>,
  options: PackOptions = {},
): AsyncGenerator<Uint8Array> {
  const writer = new PackWriter();
  let failure: unknown;
  const producing = produce(writer)
    .then(() => writer.end())
    .catch((e: unknown) => {
      failure = e;
      writer.cancel();
    });
  const raw = (async function* () {
    for (let c = await writer.next(); c !== undefined; c = await writer.next()) yield c;
  })();
  try {
    if (!options.gzip) {
      for await (const c of raw) yield c;
    } else {
      yield* coalesced(Readable.from(raw).pipe(createGzip({ level: options.gzipLevel ?? 1 })));
    }
  } finally {
    writer.cancel();
    await producing;
  }
  if (failure !== undefined) throw failure;
}

/** gzip output comes in small pieces: joined into chunks of at least 256 KiB. */
async function* coalesced(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let parts: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of source) {
    parts.push(chunk);
    bytes += chunk.length;
    if (bytes >= 256 * 1024) {
      yield Buffer.concat(parts, bytes);
      parts = [];
      bytes = 0;
    }
  }
  if (bytes > 0) yield Buffer.concat(parts, bytes);
}
