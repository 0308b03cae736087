// Names that are not valid UTF-8 come back from readdir with U+FFFD in
// place of the bad bytes, a string no call can open or remove. A task on an
// agent can create such a file; the workspace it leaves is recycled for the
// next task, which must not find it there.
import { isUtf8 } from "node:buffer";
import fs from "node:fs";

/** True when a name read as a string may stand for one that is not valid UTF-8. */
export const mayBeUndecodable = (name: string) => name.includes("\uFFFD");

/**
 * Removes the entries of `dir` (a directory, not followed if a symlink)
 * whose names are not valid UTF-8, with everything under them; returns how
 * many. Symlinks among them are removed, never followed.
 */
export function removeUndecodable(dir: string): number {
  let removed = 0;
  const base = Buffer.from(dir.endsWith("/") ? dir : `${dir}/`);
  for (const name of fs.readdirSync(base, { encoding: "buffer" })) {
    if (isUtf8(name)) continue;
    removeTree(Buffer.concat([base, name]));
    removed++;
  }
  return removed;
}

function removeTree(p: Buffer): void {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (st === undefined) return;
  if (st.isDirectory()) {
    for (const name of fs.readdirSync(p, { encoding: "buffer" }))
      removeTree(Buffer.concat([p, Buffer.from("/"), name]));
    fs.rmdirSync(p);
  } else fs.unlinkSync(p);
}
