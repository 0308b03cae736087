import { createHash, hash } from "node:crypto";
import fs from "node:fs";

// Files are read through one reused buffer, large ones in chunks so a
// multi-GB file never sits in memory.
const CHUNK = 1024 * 1024;
let scratch: Buffer | undefined;

/** sha256 hex of `data`. */
export function sha256(data: Uint8Array): string {
  // One-shot: no Hash object per blob (10,000 of them add up).
  return hash("sha256", data, "hex");
}

/**
 * Hashes a file synchronously (awaiting one read per file is the bottleneck
 * of a 10,000-file workspace), never through a symlink; returns the hash
 * and the bytes read. A file no larger than the read buffer costs one open,
 * one read and one close. With `keep`, a file smaller than the read buffer
 * comes back as `data` too, so it need not be read again to be packed.
 */
export function hashFile(
  file: string,
  size: number,
  keep = false,
): { hash: string; size: number; data?: Buffer } {
  scratch ??= Buffer.allocUnsafe(CHUNK);
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  let h: ReturnType<typeof createHash> | undefined;
  let total = 0;
  try {
    if (keep && size < CHUNK) {
      // Read into a buffer of its own, handed back with the hash.
      const own = Buffer.allocUnsafe(size + 1);
      const n = fs.readSync(fd, own, 0, size + 1, null);
      if (n <= size) {
        const data = own.subarray(0, n);
        return { hash: sha256(data), size: n, data };
      }
      // It grew since it was listed: hashed whole, not kept.
      h = createHash("sha256").update(own.subarray(0, n));
      total = n;
      for (;;) {
        const m = fs.readSync(fd, scratch, 0, CHUNK, null);
        if (m === 0) break;
        h.update(scratch.subarray(0, m));
        total += m;
      }
      return { hash: h.digest("hex"), size: total };
    }
    // Asking for one byte more than expected tells a short read (the end) at once.
    let want = Math.min(CHUNK, size + 1);
    for (;;) {
      const n = fs.readSync(fd, scratch, 0, want, null);
      if (n === 0) break;
      // The whole file in one read: hashed in one shot.
      if (h === undefined && n < want) return { hash: sha256(scratch.subarray(0, n)), size: n };
      h ??= createHash("sha256");
      h.update(scratch.subarray(0, n));
      total += n;
      if (n < want && total > size - 1) break;
      want = CHUNK;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { hash: (h ?? createHash("sha256")).digest("hex"), size: total };
}
