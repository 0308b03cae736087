import { createHash } from "node:crypto";
import fs from "node:fs";

// Small files are read whole (one read syscall); large ones in chunks so a
// multi-GB file never sits in memory.
const WHOLE_FILE_MAX = 4 * 1024 * 1024;
const CHUNK = 1024 * 1024;
let scratch: Buffer | undefined;

/** sha256 hex of `data`. */
export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Hashes a file synchronously (awaiting one read per file is the bottleneck
 * of a 10,000-file workspace); returns the hash and the bytes read.
 */
export function hashFile(file: string, size: number): { hash: string; size: number } {
  if (size <= WHOLE_FILE_MAX) {
    const data = fs.readFileSync(file);
    return { hash: sha256(data), size: data.length };
  }
  scratch ??= Buffer.allocUnsafe(CHUNK);
  const h = createHash("sha256");
  const fd = fs.openSync(file, "r");
  let total = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, scratch, 0, CHUNK, null);
      if (n === 0) break;
      h.update(scratch.subarray(0, n));
      total += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { hash: h.digest("hex"), size: total };
}
