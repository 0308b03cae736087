// Feeds an archive from an AsyncIterable into tar-stream's parser and hands
// each entry to a handler that writes it synchronously, content passed on as
// the parser's views of the incoming chunks (one awaited write per file is
// what makes extraction slow). Limits are enforced from the headers, before
// any content is written.
import { pipeline, Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import tar from "tar-stream";
import { isWorkspaceError, tooLarge, WorkspaceError } from "./errors.js";
import type { TarHeader } from "./tar-header.js";

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
  const limit = options.limitBytes ?? Number.POSITIVE_INFINITY;
  const maxEntries = options.maxEntries ?? 10_000_000;
  const ex = tar.extract({ highWaterMark: 1024 * 1024 });
  let failure: unknown;
  let current: EntryWriter | undefined;
  let entries = 0;
  let bytes = 0;
  const fail = (e: unknown) => {
    failure ??= e;
    current?.abort();
    current = undefined;
    ex.destroy(e instanceof Error ? e : new Error(String(e)));
  };
  ex.on("entry", (raw, stream, next) => {
    const header: TarHeader = {
      name: raw.name,
      type: raw.type ?? "file",
      mode: raw.mode ?? 0o644,
      size: raw.size ?? 0,
      linkname: raw.linkname ?? undefined,
    };
    const pax = (raw as { pax?: Record<string, string> }).pax;
    if (pax) header.pax = pax;
    // The parser destroys the entry with the archive's failure, reported once below.
    stream.on("error", () => {});
    try {
      // tar-stream takes a base-256 size it cannot read as null, then waits forever for the content.
      if (!Number.isSafeInteger(raw.size) || (raw.size as number) < 0)
        throw new WorkspaceError(
          "SLOTH_ARCHIVE_INVALID",
          `cannot read the archive: entry ${JSON.stringify(raw.name)} has no valid size`,
          { details: { entry: raw.name } },
        );
      if (++entries > maxEntries)
        throw new WorkspaceError(
          "SLOTH_WORKSPACE_TOO_LARGE",
          `cannot accept the archive: more than ${maxEntries} entries`,
          { details: { entry: header.name, limit: maxEntries } },
        );
      if (header.size > limit)
        throw tooLarge(`entry ${JSON.stringify(header.name)}`, header.size, limit, header.name);
      bytes += header.size;
      if (bytes > limit)
        throw tooLarge(
          `the archive at entry ${JSON.stringify(header.name)}`,
          bytes,
          limit,
          header.name,
        );
      current = onEntry(header);
    } catch (e) {
      fail(e);
      return;
    }
    const w = current;
    if (raw.type === "directory") {
      // tar-stream reads no content for a directory, whatever its size says,
      // and never ends the stream of one that claims some: do not wait for it.
      stream.resume();
      try {
        w?.end();
        current = undefined;
        next();
      } catch (e) {
        fail(e);
      }
      return;
    }
    stream.on("data", (chunk) => {
      if (w === undefined || failure !== undefined) return;
      try {
        w.write(chunk as Uint8Array);
      } catch (e) {
        fail(e);
      }
    });
    stream.on("end", () => {
      if (failure !== undefined) return;
      try {
        w?.end();
        current = undefined;
        next();
      } catch (e) {
        fail(e);
      }
    });
  });
  const closed = new Promise<void>((resolve, reject) => {
    ex.on("error", reject);
    ex.on("close", () => resolve());
  });
  // Keep an early rejection from counting as unhandled before it is awaited.
  closed.catch(() => {});
  try {
    for await (const chunk of decompressed(input, options.gzip === true)) {
      if (failure !== undefined || ex.destroyed) break;
      if (!ex.write(chunk)) await drainedOrClosed(ex);
      const wait = ready?.();
      if (wait) await wait;
    }
    if (failure === undefined && !ex.destroyed) ex.end(undefined);
    await closed;
  } catch (e) {
    fail(e);
  }
  if (failure !== undefined) {
    if (isWorkspaceError(failure)) throw failure;
    throw new WorkspaceError(
      "SLOTH_ARCHIVE_INVALID",
      `cannot read the archive: ${(failure as Error)?.message ?? String(failure)}`,
      { cause: failure },
    );
  }
  return { entries, bytes };
}

function drainedOrClosed(ex: tar.Extract): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      ex.off("drain", done);
      ex.off("close", done);
      resolve();
    };
    ex.on("drain", done);
    ex.on("close", done);
  });
}

function decompressed(input: AsyncIterable<Uint8Array>, gzip: boolean): AsyncIterable<Uint8Array> {
  if (!gzip) return input;
  // pipeline carries an error of either side to the other and to the reader.
  return pipeline(Readable.from(input), createGunzip(), () => {});
}
