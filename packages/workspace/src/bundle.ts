// Bundles: several small blobs in one tar entry (see BUNDLE_PAX). Costs per
// tar entry on both ends are most of the price of sending a small file, so
// the runner sends small blobs this way to a receiver that reads them.
import { unsafe } from "./errors.js";
import { isHash } from "./manifest.js";
import type { EntryWriter, TarHeader } from "./tar-read.js";

/** One blob of a bundle: its hash and size, in the order of the bytes. */
export interface BundledBlob {
  hash: string;
  size: number;
}

const SIZE = /^(0|[1-9][0-9]{0,15})$/;

/**
 * The blobs a bundle entry lists; SLOTH_ARCHIVE_UNSAFE naming the entry
 * when the list is malformed or its sizes do not add up to the entry's.
 */
export function parseBundle(header: TarHeader, list: string): BundledBlob[] {
  if (header.type !== "file")
    throw unsafe(header.name, `a bundle must be a file, not ${header.type}`);
  const out: BundledBlob[] = [];
  let total = 0;
  for (const item of list.split(",")) {
    const colon = item.indexOf(":");
    const hash = item.slice(0, colon);
    const size = item.slice(colon + 1);
    const n = Number(size);
    if (colon < 0 || !isHash(hash) || !SIZE.test(size) || !Number.isSafeInteger(n))
      throw unsafe(header.name, `bundle lists ${JSON.stringify(item.slice(0, 80))}, not HASH:SIZE`);
    out.push({ hash, size: n });
    total += n;
  }
  if (total !== header.size)
    throw unsafe(
      header.name,
      `bundle lists ${total} bytes of blobs but holds ${header.size} bytes`,
    );
  return out;
}

/**
 * A writer for a bundle's content: it cuts the bytes at the listed sizes and
 * hands each blob to the writer `open` gives for it (undefined: skip it),
 * opening each only when the one before it has ended.
 */
export function bundleWriter(
  blobs: BundledBlob[],
  open: (blob: BundledBlob) => EntryWriter | undefined,
): EntryWriter {
  let index = -1;
  let current: EntryWriter | undefined;
  let left = 0;
  // Ends the current blob and opens the next ones, ending those that are empty.
  const advance = () => {
    current?.end();
    current = undefined;
    while (++index < blobs.length) {
      const blob = blobs[index] as BundledBlob;
      current = open(blob);
      left = blob.size;
      if (left > 0) return;
      current?.end();
      current = undefined;
    }
  };
  advance();
  return {
    write(chunk) {
      let at = 0;
      while (at < chunk.length) {
        if (index >= blobs.length) throw new Error("bundle content longer than its list");
        const n = Math.min(left, chunk.length - at);
        current?.write(at === 0 && n === chunk.length ? chunk : chunk.subarray(at, at + n));
        at += n;
        left -= n;
        if (left === 0) advance();
      }
    },
    end() {
      if (index < blobs.length) throw new Error("bundle content shorter than its list");
    },
    abort() {
      current?.abort();
      current = undefined;
    },
  };
}
