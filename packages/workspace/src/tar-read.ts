// Parses an archive from an AsyncIterable and hands each entry to a handler
// that writes it synchronously: no stream or event per entry, and content
// passed on as views of the incoming chunks, not copies (one awaited write
// per file, or a stream per entry, is what makes extraction slow). Limits
// are enforced from the headers, before any content is written.
import { pipeline, Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { isWorkspaceError, tooLarge, WorkspaceError } from "./errors.js";
import {
  BLOCK,
  type Pending,
  padded,
  readHeader,
  readPax,
  type TarHeader,
  text,
} from "./tar-header.js";

export type { TarHeader } from "./tar-header.js";

/** Limits and format of an incoming archive. */
export interface ReadOptions {
  /** The archive is gzip-compressed. Default false. */
  gzip?: boolean;
  /** Refuse entries and archives whose content adds up to more than this. Default: no limit. */
  limitBytes?: number;
  /** Refuse archives with more entries than this. Default 10,000,000. */
  maxEntries?: number;
}

/** Receives one entry's content; `abort` cleans up after a failure elsewhere. */
export interface EntryWriter {
  write(chunk: Uint8Array): void;
  end(): void;
  abort(): void;
}

// Pax and GNU long-name bodies are held in memory: bound them.
const MAX_META = 1024 * 1024;

/**
 * Parses `input`; for each entry calls `onEntry`, which validates the header
 * (throwing to reject the whole archive) and returns a writer for its
 * content, or undefined to skip it. `ready`, asked after each chunk, may
 * hold the reading back while the writers catch up.
 */
export async function readTar(
  input: AsyncIterable<Uint8Array>,
  options: ReadOptions,
  onEntry: (header: TarHeader) => EntryWriter | undefined,
  ready?: () => Promise<void> | undefined,
): Promise<{ entries: number; bytes: number }> {
  const parser = new TarParser(options, onEntry);
  try {
    for await (const chunk of decompressed(input, options.gzip === true)) {
      // Read to the end even after the end-of-archive blocks, so the sender is never cut off.
      parser.push(chunk);
      const wait = ready?.();
      if (wait) await wait;
    }
    parser.finish();
  } catch (e) {
    parser.abort();
    if (isWorkspaceError(e)) throw e;
    throw new WorkspaceError(
      "SLOTH_ARCHIVE_INVALID",
      `cannot read the archive: ${(e as Error)?.message ?? String(e)}`,
      { cause: e },
    );
  }
  return { entries: parser.entries, bytes: parser.bytes };
}

/** A push parser: headers, then content handed to the entry's writer, then padding. */
class TarParser {
  entries = 0;
  bytes = 0;
  ended = false;
  private readonly limit: number;
  private readonly maxEntries: number;
  // The header block being assembled when it spans two chunks.
  private readonly block = Buffer.alloc(BLOCK);
  private blockFill = 0;
  private pending: Pending = {};
  // The entry being read: its writer (or a pax/GNU body being collected).
  private writer: EntryWriter | undefined;
  private meta: { kind: string; parts: Uint8Array[] } | undefined;
  private left = 0;
  private skip = 0;

  constructor(
    options: ReadOptions,
    private readonly onEntry: (header: TarHeader) => EntryWriter | undefined,
  ) {
    this.limit = options.limitBytes ?? Number.POSITIVE_INFINITY;
    this.maxEntries = options.maxEntries ?? 10_000_000;
  }

  push(chunk: Uint8Array): void {
    let i = 0;
    const n = chunk.length;
    while (i < n && !this.ended) {
      if (this.left > 0) {
        const take = Math.min(this.left, n - i);
        const part = chunk.subarray(i, i + take);
        if (this.writer) this.writer.write(part);
        else if (this.meta) this.meta.parts.push(part);
        this.left -= take;
        i += take;
        if (this.left === 0) this.endEntry();
      } else if (this.skip > 0) {
        const take = Math.min(this.skip, n - i);
        this.skip -= take;
        i += take;
      } else if (this.blockFill === 0 && n - i >= BLOCK) {
        this.header(chunk.subarray(i, i + BLOCK));
        i += BLOCK;
      } else {
        const take = Math.min(BLOCK - this.blockFill, n - i);
        this.block.set(chunk.subarray(i, i + take), this.blockFill);
        this.blockFill += take;
        i += take;
        if (this.blockFill === BLOCK) {
          this.blockFill = 0;
          this.header(this.block);
        }
      }
    }
  }

  /** Checks the archive did not stop inside an entry. */
  finish(): void {
    if (this.ended) return;
    if (this.left > 0 || this.skip > 0 || this.blockFill > 0 || this.meta)
      throw new Error("unexpected end of data");
    if (Object.keys(this.pending).length > 0) throw new Error("unexpected end of data");
  }

  abort(): void {
    this.writer?.abort();
    this.writer = undefined;
  }

  private header(b: Uint8Array): void {
    const h = readHeader(b);
    if (h === undefined) {
      // End of archive: what follows (a second zero block, record padding) is ignored.
      this.ended = true;
      return;
    }
    if (
      h.type === "pax-header" ||
      h.type === "pax-global-header" ||
      h.type === "gnu-long-path" ||
      h.type === "gnu-long-link-path"
    ) {
      if (h.size > MAX_META) throw new Error(`${h.type} of ${h.size} bytes is too large`);
      this.meta = { kind: h.type, parts: [] };
      this.skip = padded(h.size) - h.size;
      this.left = h.size;
      if (this.left === 0) this.endEntry();
      return;
    }
    const p = this.pending;
    this.pending = {};
    if (p.path !== undefined) h.name = p.path;
    if (p.linkpath !== undefined) h.linkname = p.linkpath;
    if (p.size !== undefined) h.size = p.size;
    this.skip = padded(h.size) - h.size;
    if (++this.entries > this.maxEntries)
      throw new WorkspaceError(
        "SLOTH_WORKSPACE_TOO_LARGE",
        `cannot accept the archive: more than ${this.maxEntries} entries`,
        { details: { entry: h.name, limit: this.maxEntries } },
      );
    if (h.size > this.limit)
      throw tooLarge(`entry ${JSON.stringify(h.name)}`, h.size, this.limit, h.name);
    this.bytes += h.size;
    if (this.bytes > this.limit)
      throw tooLarge(
        `the archive at entry ${JSON.stringify(h.name)}`,
        this.bytes,
        this.limit,
        h.name,
      );
    this.writer = this.onEntry(h);
    this.left = h.size;
    if (this.left === 0) this.endEntry();
    else if (this.writer === undefined) {
      this.skip += this.left;
      this.left = 0;
    }
  }

  private endEntry(): void {
    const meta = this.meta;
    if (meta) {
      this.meta = undefined;
      const body = Buffer.concat(meta.parts);
      if (meta.kind === "pax-header") readPax(body, this.pending);
      else if (meta.kind === "gnu-long-path") this.pending.path = text(body, 0, body.length);
      else if (meta.kind === "gnu-long-link-path")
        this.pending.linkpath = text(body, 0, body.length);
      // Global pax headers set defaults (user names, times) that workspaces do not use.
      return;
    }
    // Still current while it ends, so a failing end is aborted too.
    this.writer?.end();
    this.writer = undefined;
  }
}

function decompressed(input: AsyncIterable<Uint8Array>, gzip: boolean): AsyncIterable<Uint8Array> {
  if (!gzip) return input;
  // pipeline carries an error of either side to the other and to the reader.
  return pipeline(Readable.from(input), createGunzip(), () => {});
}
