// The tar framing against GNU tar: what packChanges writes, tar reads, and
// what tar writes (ustar, pax and GNU long names), applyChanges reads.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  chunks,
  cleanupTemp,
  collect,
  craftTar,
  describeTree,
  tempDir,
  writeTree,
} from "../test-support/helpers.js";
import { applyChanges, diffWorkspace, isWorkspaceError, packChanges } from "./index.js";

afterAll(cleanupTemp);

const deep = `${"long-directory-name/".repeat(9)}and-a-file-name-that-is-long-too-ü.txt`;
const tree = {
  "short.txt": "short",
  [deep]: "deep",
  [`${"x".repeat(120)}.bin`]: Buffer.alloc(70_000, 7),
  "empty.txt": "",
  "link-long": { link: deep },
  "exec.sh": { mode: 0o755, content: "#!/bin/sh\n" },
};

describe("tar framing", () => {
  it("writes archives GNU tar extracts: long names, long link targets, modes", async () => {
    const src = tempDir();
    writeTree(src, tree);
    const changes = await diffWorkspace(src, { entries: [], totalBytes: 0 });
    const archive = await collect(packChanges(src, changes));
    expect(archive.length % 512).toBe(0);
    const out = tempDir();
    execFileSync("tar", ["xf", "-", "-C", out], { input: archive });
    expect(describeTree(out)).toEqual(describeTree(src));
  });

  for (const format of ["ustar", "pax", "gnu"]) {
    it(`reads what GNU tar writes (${format})`, async () => {
      const src = tempDir();
      writeTree(src, format === "ustar" ? { "short.txt": "short", "d/f": "f" } : tree);
      const names = fs.readdirSync(src).sort();
      const archive = execFileSync("tar", [`--format=${format}`, "-cf", "-", "-C", src, ...names], {
        maxBuffer: 1e8,
      });
      const target = tempDir();
      // Small pieces, so headers and long names straddle chunks.
      await applyChanges(target, chunks(archive, 333), []);
      expect(describeTree(target)).toEqual(describeTree(src));
    });
  }

  it("refuses a header with a bad checksum", async () => {
    const archive = await craftTar([{ name: "a.txt", content: "a" }]);
    archive[0] = "b".charCodeAt(0);
    const e = await applyChanges(tempDir(), chunks(archive), []).catch((x: unknown) => x);
    expect(isWorkspaceError(e, "SLOTH_ARCHIVE_INVALID"), String(e)).toBe(true);
  });

  it("refuses a path that only a pax header spells out", async () => {
    const root = tempDir();
    const target = path.join(root, "work");
    fs.mkdirSync(target);
    // Too long for a ustar header: tar-stream writes it in a pax record.
    const name = `${"a/".repeat(80)}../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../escaped.txt`;
    const archive = await craftTar([{ name, content: "x" }]);
    const e = await applyChanges(target, chunks(archive), []).catch((x: unknown) => x);
    expect(isWorkspaceError(e, "SLOTH_ARCHIVE_UNSAFE"), String(e)).toBe(true);
    expect(fs.readdirSync(root)).toEqual(["work"]);
  });
});
