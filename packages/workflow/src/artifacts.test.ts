import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, expect, test } from "vitest";
import { saveArtifacts } from "./artifacts.js";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-art-"));
  for (const f of ["a.txt", "b.log", "dist/x.js", "dist/sub/y.js", "dist/sub/z.css", "docs/q.md"]) {
    fs.mkdirSync(path.dirname(path.join(dir, "wd", f)), { recursive: true });
    fs.writeFileSync(path.join(dir, "wd", f), f);
  }
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test("globs: * stays in a segment, ** spans them, a directory is copied whole", async () => {
  const save = (patterns: string[], dest: string) =>
    saveArtifacts(patterns, path.join(dir, "wd"), path.join(dir, dest));
  expect(await save(["*.txt"], "1")).toEqual(["a.txt"]);
  expect(await save(["dist/*.js"], "2")).toEqual(["dist/x.js"]);
  expect(await save(["dist/**/*.js"], "3")).toEqual(["dist/sub/y.js", "dist/x.js"]);
  expect(await save(["docs"], "4")).toEqual(["docs"]);
  expect(fs.readFileSync(path.join(dir, "4/docs/q.md"), "utf8")).toBe("docs/q.md");
  expect(fs.readFileSync(path.join(dir, "3/dist/sub/y.js"), "utf8")).toBe("dist/sub/y.js");
  await expect(save(["*.none"], "5")).rejects.toThrow(`artifact '*.none' not found in ${dir}/wd`);
});
