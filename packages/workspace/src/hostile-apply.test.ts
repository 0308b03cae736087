// A hostile agent: archives and deleted lists crafted by hand with
// tar-stream, each of which must be refused, naming the entry, with nothing
// written or deleted outside the runner's workdir.
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import {
  type Crafted,
  chunks,
  cleanupTemp,
  craftTar,
  describeTree,
  tempDir,
  writeTree,
} from "../test-support/helpers.js";
import { applyChanges, isWorkspaceError, scanWorkspace, type WorkspaceErrorCode } from "./index.js";

afterAll(cleanupTemp);

let outside: string;
let target: string;
let outsideBefore: Record<string, string>;

beforeEach(() => {
  const root = tempDir();
  outside = path.join(root, "outside");
  target = path.join(root, "work");
  writeTree(outside, { "victim.txt": "precious", "sub/x": "x" });
  writeTree(target, {
    "a.txt": "a",
    ".git/HEAD": "ref",
    "out-link": { link: outside },
    "out-file": { link: path.join(outside, "victim.txt") },
    "inside-link": { link: "d" },
    "d/f": "f",
  });
  outsideBefore = describeTree(outside);
});

async function rejects(p: Promise<unknown>, code: WorkspaceErrorCode, entry?: string) {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isWorkspaceError(e, code), String(e)).toBe(true);
  if (entry !== undefined) {
    expect((e as Error).message).toContain(JSON.stringify(entry));
  }
  expect(describeTree(outside)).toEqual(outsideBefore);
}

async function apply(entries: Crafted[], deleted: string[] = [], options = {}) {
  return applyChanges(target, chunks(await craftTar(entries)), deleted, options);
}

describe("applyChanges refuses", () => {
  const cases: [string, Crafted[], string][] = [
    [
      "a path with ..",
      [{ name: "../outside/victim.txt", content: "pwned" }],
      "../outside/victim.txt",
    ],
    [
      "a path climbing back out",
      [{ name: "d/../../outside/new", content: "x" }],
      "d/../../outside/new",
    ],
    ["an absolute path", [{ name: `${"/"}tmp/sloth-evil`, content: "x" }], "/tmp/sloth-evil"],
    [
      "a symlink to an absolute path",
      [{ name: "l", type: "symlink", linkname: "/etc/passwd" }],
      "l",
    ],
    ["a symlink climbing out", [{ name: "l", type: "symlink", linkname: "../outside" }], "l"],
    ["a deep symlink climbing out", [{ name: "d/l", type: "symlink", linkname: "../../x" }], "d/l"],
    [
      "a symlink that is not normalised",
      [{ name: "l", type: "symlink", linkname: "d/../.." }],
      "l",
    ],
    [
      "a link chain: a .. after a symlink",
      [
        { name: "dot", type: "symlink", linkname: "." },
        { name: "up", type: "symlink", linkname: "dot/.." },
      ],
      "up",
    ],
    [
      "a write through an existing symlink to outside",
      [{ name: "out-link/victim.txt", content: "pwned" }],
      "out-link/victim.txt",
    ],
    [
      "a write through a symlink inside the tree",
      [{ name: "inside-link/g", content: "g" }],
      "inside-link/g",
    ],
    [
      "a write through a symlink from the same archive",
      [
        { name: "l", type: "symlink", linkname: "d" },
        { name: "l/new", content: "x" },
      ],
      "l/new",
    ],
    ["a hard link out", [{ name: "h", type: "link", linkname: "/etc/passwd" }], "h"],
    ["a hard link in", [{ name: "h", type: "link", linkname: "a.txt" }], "h"],
    ["a character device", [{ name: "c", type: "character-device" }], "c"],
    ["a block device", [{ name: "b", type: "block-device" }], "b"],
    ["a fifo", [{ name: "p", type: "fifo" }], "p"],
  ];
  for (const [what, entries, entry] of cases) {
    it(what, async () => {
      await rejects(apply(entries), "SLOTH_ARCHIVE_UNSAFE", entry);
      expect(fs.existsSync(path.join(target, ".git/hooks"))).toBe(false);
      expect(fs.readFileSync(path.join(target, "d/f"), "utf8")).toBe("f");
    });
  }

  it("a git hook, when excluded paths are errors", async () => {
    const hook = { name: ".git/hooks/pre-commit", content: "#!/bin/sh\nrm -rf ~\n", mode: 0o755 };
    await rejects(
      apply([hook], [], { excluded: "error" }),
      "SLOTH_ARCHIVE_UNSAFE",
      ".git/hooks/pre-commit",
    );
    await rejects(
      apply([], [".git/HEAD"], { excluded: "error" }),
      "SLOTH_ARCHIVE_UNSAFE",
      ".git/HEAD",
    );
    expect(fs.existsSync(path.join(target, ".git/hooks"))).toBe(false);
  });

  it("an entry over the limit before writing any of it", async () => {
    await rejects(
      apply([{ name: "big", content: Buffer.alloc(2048) }], [], { limitBytes: 1024 }),
      "SLOTH_WORKSPACE_TOO_LARGE",
    );
    expect(fs.existsSync(path.join(target, "big"))).toBe(false);
  });

  it("a total over the limit", async () => {
    const entries = [1, 2, 3].map((i) => ({ name: `f${i}`, content: Buffer.alloc(600) }));
    await rejects(apply(entries, [], { limitBytes: 1500 }), "SLOTH_WORKSPACE_TOO_LARGE", "f3");
    expect(fs.existsSync(path.join(target, "f3"))).toBe(false);
  });

  it("a truncated archive, leaving no temp file", async () => {
    const tar = await craftTar([{ name: "f", content: Buffer.alloc(5000, 1) }]);
    const e = applyChanges(target, chunks(tar.subarray(0, 3000)), []);
    await rejects(e, "SLOTH_ARCHIVE_INVALID");
    expect(fs.readdirSync(target).filter((n) => n.includes("sloth-"))).toEqual([]);
    // A new file cut short is removed; an existing one cut short stays whole.
    expect(fs.existsSync(path.join(target, "f"))).toBe(false);
    const over = await craftTar([{ name: "a.txt", content: Buffer.alloc(5000, 2) }]);
    await rejects(
      applyChanges(target, chunks(over.subarray(0, 3000)), []),
      "SLOTH_ARCHIVE_INVALID",
    );
    expect(fs.readFileSync(path.join(target, "a.txt"), "utf8")).toBe("a");
    expect(fs.readdirSync(target).filter((n) => n.includes("sloth-"))).toEqual([]);
  });

  it("plain tar announced as gzip", async () => {
    await rejects(
      applyChanges(target, chunks(await craftTar([{ name: "f", content: "x" }])), [], {
        gzip: true,
      }),
      "SLOTH_ARCHIVE_INVALID",
    );
  });

  const badDeletes: [string, string][] = [
    ["a deletion with ..", "../outside/victim.txt"],
    ["an absolute deletion", "<outside>/victim.txt"],
    ["a deletion through a symlink", "out-link/victim.txt"],
    ["a deletion of the root", "."],
  ];
  for (const [what, spec] of badDeletes) {
    it(what, async () => {
      const p = spec.replace("<outside>", outside);
      await rejects(apply([], [p]), "SLOTH_ARCHIVE_UNSAFE", p);
      expect(fs.existsSync(path.join(target, ".git/HEAD"))).toBe(true);
    });
  }

  it("a deletion of a path that was not sent", async () => {
    writeTree(target, { "local-only.txt": "mine" });
    fs.rmSync(path.join(target, "local-only.txt"));
    const base = await scanWorkspace(target, { outsideSymlinks: "skip" });
    writeTree(target, { "local-only.txt": "mine" });
    await rejects(
      apply([], ["local-only.txt"], { base }),
      "SLOTH_ARCHIVE_UNSAFE",
      "local-only.txt",
    );
    expect(fs.existsSync(path.join(target, "local-only.txt"))).toBe(true);
  });
});

describe("applyChanges drops excluded paths by default", () => {
  it("a git hook and a .git deletion are skipped, the rest applied", async () => {
    const r = await apply(
      [
        { name: ".git/hooks/pre-commit", content: "#!/bin/sh\nrm -rf ~\n", mode: 0o755 },
        { name: ".git", type: "directory" },
        { name: "ok.txt", content: "ok" },
      ],
      [".git/HEAD"],
    );
    expect(r).toEqual({ written: 1, deleted: 0, skipped: 3 });
    expect(fs.existsSync(path.join(target, ".git/hooks"))).toBe(false);
    expect(fs.readFileSync(path.join(target, ".git/HEAD"), "utf8")).toBe("ref");
    expect(fs.readFileSync(path.join(target, "ok.txt"), "utf8")).toBe("ok");
  });

  it("a task's node_modules stays out when excluded", async () => {
    const r = await apply(
      [
        { name: "node_modules/x/index.js", content: "x" },
        { name: "b.txt", content: "b" },
      ],
      [],
      {
        exclude: ["node_modules/"],
      },
    );
    expect(r.skipped).toBe(1);
    expect(fs.existsSync(path.join(target, "node_modules"))).toBe(false);
  });
});

describe("applyChanges replaces without following", () => {
  it("a symlink to outside replaced by a file leaves the outside file alone", async () => {
    await apply([{ name: "out-file", content: "mine now" }]);
    expect(fs.lstatSync(path.join(target, "out-file")).isFile()).toBe(true);
    expect(fs.readFileSync(path.join(target, "out-file"), "utf8")).toBe("mine now");
    expect(describeTree(outside)).toEqual(outsideBefore);
  });

  it("a symlink to outside replaced by a directory", async () => {
    await apply([
      { name: "out-link", type: "directory", mode: 0o755 },
      { name: "out-link/n", content: "n" },
    ]);
    expect(fs.lstatSync(path.join(target, "out-link")).isDirectory()).toBe(true);
    expect(describeTree(outside)).toEqual(outsideBefore);
  });

  it("a directory replaced by a symlink later in the archive keeps its chmod to itself", async () => {
    fs.chmodSync(path.join(target, "d"), 0o755);
    const r = await apply([
      { name: "x/", type: "directory", mode: 0o700 },
      { name: "x", type: "symlink", linkname: "d" },
      { name: "loop/", type: "directory", mode: 0o700 },
      { name: "loop", type: "symlink", linkname: "loop" },
    ]);
    expect(r.written).toBe(4);
    expect(fs.statSync(path.join(target, "d")).mode & 0o777).toBe(0o755);
    expect(fs.readlinkSync(path.join(target, "x"))).toBe("d");
  });

  // Header fields tar-stream reads in a way that once left it waiting forever.
  for (const [what, type, size] of [
    ["a directory claiming 5 GiB of content", "directory", "50000000000"],
    ["a symlink whose size is unreadable base-256", "symlink", "\x81"],
  ] as const) {
    it(what, async () => {
      const tar = await craftTar([
        { name: "x", type, linkname: type === "symlink" ? "d" : undefined },
        { name: "after.txt", content: "a" },
      ]);
      tar.write(size, 124, "latin1");
      tar.fill(0x20, 148, 156);
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += tar[i] as number;
      tar.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
      const r = await applyChanges(target, chunks(tar), []).catch((e: unknown) => e);
      if (r instanceof Error) expect(isWorkspaceError(r), String(r)).toBe(true);
      expect(describeTree(outside)).toEqual(outsideBefore);
    });
  }

  it("a deleted symlink is removed itself, not its target", async () => {
    const r = await apply([], ["out-link", "out-file"]);
    expect(r.deleted).toBe(2);
    expect(fs.existsSync(path.join(target, "out-link"))).toBe(false);
    expect(describeTree(outside)).toEqual(outsideBefore);
  });

  it("setuid bits do not travel", async () => {
    await apply([{ name: "s", content: "x", mode: 0o4755 }]);
    expect(fs.statSync(path.join(target, "s")).mode & 0o7777).toBe(0o755);
  });
});
