import { createHash } from "node:crypto";
import fs from "node:fs";

/**
 * sha256 (hex) of a workflow file's bytes, recorded with each run so that
 * `run --resume` can tell when the file changed. Files it `require`s are
 * not included.
 */
export function hashFile(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}
