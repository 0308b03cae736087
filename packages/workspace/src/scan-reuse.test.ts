import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { chunks, cleanupTemp, collect, tempDir, writeTree } from "../test-support/helpers.js";
import {
  BlobCache,
  type DirEntry,
  diffWorkspace,
  type FileEntry,
  type Folders,
  foldersOf,
  isWorkspaceError,
  type Manifest,
  packBlobs,
  readFolders,
  type SymlinkEntry,
  sameManifest,
  scanWorkspace,
} from "./index.js";
import { olderThan } from "./scan.js";

afterAll(cleanupTemp);
afterEach(() => {
  vi.restoreAllMocks();
});

const old = new Date(Date.now() - 60_000);

/** Files whose mtime and ctime are old enough to be trusted by a later scan. */
async function workspace(): Promise<string> {
  const dir = tempDir();
  for (const name of ["a.txt", "b.txt", "c.txt"]) {
    fs.writeFileSync(path.join(dir, name), `content of ${name}\n`);
    fs.utimesSync(path.join(dir, name), old, old);
  }
  // ctime is the time of the last change: let it fall behind the next scan's start.
  await new Promise((r) => setTimeout(r, 150));
  return dir;
}

/** The workspace files a scan opened (each opening reads and hashes one). */
const opened = (dir: string, scan: () => Promise<unknown>) => touched("openSync", dir, scan);

/** The workspace paths `fn` was called with while `scan` ran, relative to `dir`. */
async function touched(
  fn: "openSync" | "readdirSync",
  dir: string,
  scan: () => Promise<unknown>,
): Promise<string[]> {
  const spy = vi.spyOn(fs, fn);
  try {
    await scan();
    return spy.mock.calls
      .map((c) => String(c[0]))
      .filter((p) => p.startsWith(dir))
      .map((p) => path.relative(dir, p))
      .sort();
  } finally {
    spy.mockRestore();
  }
}

const hashOf = (m: { entries: unknown[] }, p: string) =>
  (m.entries as FileEntry[]).find((e) => e.path === p)?.hash;

describe("scanWorkspace with reuse", () => {
  it("hashes only the files that changed since the reused scan", async () => {
    const dir = await workspace();
    const startedAt = Date.now();
    const first = await scanWorkspace(dir);
    expect(first.entries.every((e) => e.type !== "file" || e.mtimeMs !== undefined)).toBe(true);
    fs.writeFileSync(path.join(dir, "b.txt"), "new content, longer than before\n");
    const again = await opened(dir, () =>
      scanWorkspace(dir, { reuse: first, reuseUntouchedBefore: startedAt }),
    );
    expect(again).toEqual(["b.txt"]);
    const none = await opened(dir, () => scanWorkspace(dir, { reuse: first }));
    expect(none).toEqual(["b.txt"]);
  });

  it("reads again a file rewritten with its old size and mtime when the reused scan is older than its ctime", async () => {
    const dir = await workspace();
    const startedAt = Date.now();
    const first = await scanWorkspace(dir);
    await new Promise((r) => setTimeout(r, 150));
    // Same size, mtime set back: only its ctime tells.
    fs.writeFileSync(path.join(dir, "a.txt"), "CONTENT OF a.txt\n");
    fs.utimesSync(path.join(dir, "a.txt"), old, old);
    let next: Awaited<ReturnType<typeof scanWorkspace>> | undefined;
    const files = await opened(dir, async () => {
      next = await scanWorkspace(dir, { reuse: first, reuseUntouchedBefore: startedAt });
    });
    expect(files).toEqual(["a.txt"]);
    expect(hashOf(next!, "a.txt")).not.toBe(hashOf(first, "a.txt"));
    expect(hashOf(next!, "c.txt")).toBe(hashOf(first, "c.txt"));
  });

  it("never trusts a file modified just before the scan", async () => {
    const dir = await workspace();
    const first = await scanWorkspace(dir);
    fs.writeFileSync(path.join(dir, "c.txt"), "fresh\n");
    // Its mtime inside the scan's racy window however long the machine
    // stalls between the write and the scan (a clock a little ahead does that too).
    const soon = new Date(Date.now() + 1000);
    fs.utimesSync(path.join(dir, "c.txt"), soon, soon);
    const second = await scanWorkspace(dir, { reuse: first });
    const c = (second.entries as FileEntry[]).find((e) => e.path === "c.txt");
    // Racy: no mtime recorded, so the next scan hashes it again.
    expect(c?.mtimeMs).toBeUndefined();
    expect(await opened(dir, () => scanWorkspace(dir, { reuse: second }))).toEqual(["c.txt"]);
  });
});

describe("scanWorkspace with reuseListings", () => {
  /** The workspace folders a scan listed. */
  const listed = (dir: string, scan: () => Promise<unknown>) => touched("readdirSync", dir, scan);

  /** A tree whose folders' ctimes are old enough to be trusted, its scan, and that scan's start. */
  async function scanned(spec: Record<string, string>) {
    const dir = tempDir();
    for (const [rel, text] of Object.entries(spec)) {
      fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      fs.writeFileSync(path.join(dir, rel), text);
      fs.utimesSync(path.join(dir, rel), old, old);
    }
    await new Promise((r) => setTimeout(r, 150));
    const startedAt = Date.now();
    const first = await scanWorkspace(dir);
    await new Promise((r) => setTimeout(r, 150));
    const again = () =>
      scanWorkspace(dir, {
        reuse: first,
        reuseUntouchedBefore: startedAt,
        reuseListings: foldersOf(first),
      });
    return { dir, first, startedAt, again };
  }

  it("lists again only the folders whose entries changed, and finds every change", async () => {
    const spec: Record<string, string> = {};
    for (const d of ["same", "added", "removed", "renamed", "edited", "same/deep"])
      for (const f of ["x.txt", "y.txt"]) spec[`${d}/${f}`] = `${d}/${f}\n`;
    const { dir, first, again } = await scanned(spec);
    expect(foldersOf(first)?.ids).toHaveProperty("same/deep");
    fs.writeFileSync(path.join(dir, "added", "z.txt"), "new\n");
    fs.rmSync(path.join(dir, "removed", "x.txt"));
    fs.renameSync(path.join(dir, "renamed", "x.txt"), path.join(dir, "renamed", "w.txt"));
    // Rewritten in place: its folder's entries are the same, the file is not.
    fs.writeFileSync(path.join(dir, "edited", "x.txt"), "edited, and longer\n");
    fs.writeFileSync(path.join(dir, "same", "deep", "y.txt"), "deeper change\n");
    let next: Manifest | undefined;
    const dirs = await listed(dir, async () => {
      next = await again();
    });
    expect(dirs).toEqual(["added", "removed", "renamed"]);
    // The same as a scan that lists every folder.
    expect(next).toEqual(await scanWorkspace(dir));
    // Without the folders it was made from, every folder is listed.
    expect(await listed(dir, () => scanWorkspace(dir, { reuse: first }))).toHaveLength(7);
  });

  it("lists a folder moved into place afresh, with everything under it", async () => {
    const { dir, again } = await scanned({
      "a/sub/one": "1",
      "a/sub/two": "2",
      "x/sub/one": "1",
      "x/sub/two": "2",
      "x/sub/three": "3",
    });
    // a/sub and x/sub kept their own ctimes: only their inodes tell.
    fs.rmSync(path.join(dir, "a"), { recursive: true });
    fs.renameSync(path.join(dir, "x"), path.join(dir, "a"));
    const next = await again();
    expect(next).toEqual(await scanWorkspace(dir));
    expect(next.entries.map((e) => e.path)).toContain("a/sub/three");
  });

  it("scans a root pointed elsewhere afresh, trusting none of the old hashes", async () => {
    const a = await scanned({ "src/f.txt": "A's text", "src/g.txt": "same" });
    const b = await scanned({ "src/f.txt": "B's text", "src/g.txt": "same", "src/h.txt": "h" });
    const link = path.join(tempDir(), "proj");
    fs.symlinkSync(a.dir, link);
    const viaLink = await scanWorkspace(link);
    fs.rmSync(link);
    fs.symlinkSync(b.dir, link);
    // Same size and old mtimes and ctimes: only the folders' inodes tell.
    const next = await scanWorkspace(link, {
      reuse: viaLink,
      reuseUntouchedBefore: Date.now(),
      reuseListings: foldersOf(viaLink),
    });
    expect(next).toEqual(await scanWorkspace(b.dir));
  });

  it("reads every folder when the exclusions changed", async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, "logs"));
    fs.writeFileSync(path.join(dir, "logs", "a.log"), "log");
    fs.writeFileSync(path.join(dir, "logs", "keep.txt"), "keep");
    await new Promise((r) => setTimeout(r, 150));
    const startedAt = Date.now();
    const first = await scanWorkspace(dir, { exclude: ["*.log"] });
    await new Promise((r) => setTimeout(r, 150));
    const options = { reuse: first, reuseUntouchedBefore: startedAt };
    const same = await scanWorkspace(dir, {
      ...options,
      exclude: ["*.log"],
      reuseListings: foldersOf(first),
    });
    expect(same).toEqual(first);
    // The ignore file, or the options, say otherwise now: a.log must be found.
    const wider = await scanWorkspace(dir, { ...options, reuseListings: foldersOf(first) });
    expect(wider.entries.map((e) => e.path)).toContain("logs/a.log");
    fs.writeFileSync(path.join(dir, ".slothignore"), "*.txt\n");
    const other = await scanWorkspace(dir, {
      ...options,
      exclude: ["*.log"],
      reuseListings: foldersOf(first),
    });
    expect(other.entries.map((e) => e.path)).toEqual([".slothignore", "logs"]);
  });

  it("the agent's diff: folders swapped by the task, and a manifest out of order", async () => {
    const src = tempDir();
    writeTree(src, { "a/one": "1", "a/two": "2", "b/three": "3", "c/d/four": "4" });
    const manifest = await scanWorkspace(src);
    const cache = new BlobCache(tempDir());
    const missing = cache.missing(manifest);
    await cache.ingest(chunks(await collect(packBlobs(src, manifest, missing))), {
      expect: missing,
    });
    // A runner's manifest need not list parents first, or at all.
    const odd: Manifest = {
      ...manifest,
      entries: [...manifest.entries].reverse().filter((e) => e.path !== "c/d"),
    };
    const work = path.join(tempDir(), "work");
    await cache.materialize(manifest, work);
    await new Promise((r) => setTimeout(r, 150));
    const at = Date.now();
    const folders = readFolders(work, manifest);
    await new Promise((r) => setTimeout(r, 150));
    // The task swaps two folders; their own entries stay as they were.
    fs.renameSync(path.join(work, "a"), path.join(work, "tmp"));
    fs.renameSync(path.join(work, "b"), path.join(work, "a"));
    fs.renameSync(path.join(work, "tmp"), path.join(work, "b"));
    fs.writeFileSync(path.join(work, "c/d/five"), "5");
    for (const base of [manifest, odd]) {
      const changes = await diffWorkspace(work, base, {
        reuseUntouchedBefore: at,
        reuseListings: base === manifest ? folders : readFolders(work, odd),
      });
      const full = await diffWorkspace(work, base);
      expect(changes.deleted.sort()).toEqual(full.deleted.sort());
      expect(changes.changed.map((e) => e.path).sort()).toEqual(
        full.changed.map((e) => e.path).sort(),
      );
      expect(changes.changed.map((e) => e.path)).toContain("c/d/five");
      expect(changes.changed.map((e) => e.path)).toContain("a/three");
    }
  });

  it("lists a folder whose ctime moved, whatever the clocks say", async () => {
    const { dir, first } = await scanned({ "src/a.ts": "a", "src/b.ts": "b" });
    fs.writeFileSync(path.join(dir, "src/new.ts"), "new");
    // A clock that ran behind (or a time far ahead given): the ctime recorded still tells.
    const next = await scanWorkspace(dir, {
      reuse: first,
      reuseUntouchedBefore: Date.now() + 60_000,
      reuseListings: foldersOf(first),
    });
    expect(next.entries.map((e) => e.path)).toContain("src/new.ts");
  });

  it("takes records it cannot use in its stride", async () => {
    const { dir, first, startedAt } = await scanned({ "a/f": "f" });
    const options = { reuse: first, reuseUntouchedBefore: startedAt };
    const full = await scanWorkspace(dir);
    for (const bad of [{}, { ids: null }, true, { ids: { a: 7 } }])
      expect(
        await scanWorkspace(dir, { ...options, reuseListings: bad as unknown as Folders }),
      ).toEqual(full);
    // A folder the manifest names but the tree does not have (or not as a folder).
    const odd: Manifest = {
      ...first,
      entries: [...first.entries, { path: "a/f/g", type: "dir", mode: 0o755 }],
    };
    expect(readFolders(dir, odd).ids).not.toHaveProperty("a/f/g");
  });

  it("does not reuse a listing of a scan that left outside symlinks out for one that refuses them", async () => {
    const { dir } = await scanned({ "d/f": "f" });
    await new Promise((r) => setTimeout(r, 150));
    fs.symlinkSync("/etc/passwd", path.join(dir, "d/bad"));
    await new Promise((r) => setTimeout(r, 150));
    const startedAt = Date.now();
    const skipping = await scanWorkspace(dir, { outsideSymlinks: "skip" });
    await new Promise((r) => setTimeout(r, 150));
    const e = await scanWorkspace(dir, {
      reuse: skipping,
      reuseUntouchedBefore: startedAt,
      reuseListings: foldersOf(skipping),
    }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isWorkspaceError(e, "SLOTH_ARCHIVE_UNSAFE")).toBe(true);
  });

  it("keeps the hashes of the files a save-by-rename or a new file leave alone in their folder", async () => {
    const { dir, first, startedAt } = await scanned({ "src/a.ts": "aaaa", "src/b.ts": "bbbb" });
    // Hashes only a reuse could give: a file read again would get its real one.
    const fake: Manifest = {
      ...first,
      entries: first.entries.map((e) => (e.type === "file" ? { ...e, hash: "f".repeat(64) } : e)),
    };
    // An editor saving a.ts (same size) through a temporary file, and a new file.
    fs.writeFileSync(path.join(dir, "src/.a.ts.swp"), "AAAA");
    fs.renameSync(path.join(dir, "src/.a.ts.swp"), path.join(dir, "src/a.ts"));
    fs.writeFileSync(path.join(dir, "src/c.ts"), "c");
    const next = await scanWorkspace(dir, {
      reuse: fake,
      reuseUntouchedBefore: startedAt,
      reuseListings: foldersOf(first),
    });
    expect(hashOf(next, "src/b.ts")).toBe("f".repeat(64));
    expect(hashOf(next, "src/a.ts")).toBe(createHash("sha256").update("AAAA").digest("hex"));
    expect(hashOf(next, "src/c.ts")).toBe(createHash("sha256").update("c").digest("hex"));
  });

  it("a diff reuses the listings of the scan it compares with", async () => {
    const { dir, first, startedAt } = await scanned({ "a/x": "x", "b/y": "y", "c/z": "z" });
    fs.writeFileSync(path.join(dir, "b/new"), "new");
    let changes: Awaited<ReturnType<typeof diffWorkspace>> | undefined;
    const dirs = await listed(dir, async () => {
      changes = await diffWorkspace(dir, first, {
        reuseUntouchedBefore: startedAt,
        reuseListings: foldersOf(first),
      });
    });
    expect(dirs).toEqual(["b"]);
    expect(changes?.changed.map((e) => e.path)).toEqual(["b/new"]);
  });

  it("allows two seconds more for times a file system keeps in (even) seconds", () => {
    expect(olderThan(10_450, 10_600)).toBe(true);
    expect(olderThan(10_000, 10_600)).toBe(false);
    expect(olderThan(10_000, 11_200)).toBe(false);
    expect(olderThan(10_000, 12_200)).toBe(true);
  });
});

describe("scanWorkspace of many files", () => {
  it("hashes them on two threads with the same results, and keeps their bytes", async () => {
    const dir = tempDir();
    const content = new Map<string, Buffer>();
    for (let i = 0; i < 700; i++) {
      // Empty files, small ones, and some over the 1 MiB read buffer.
      const size = i % 100 === 0 ? 0 : i % 233 === 0 ? 1024 * 1024 + i : (i * 97) % 5000;
      const data = Buffer.alloc(size, i % 251);
      if (size >= 4) data.writeUInt32LE(i, 0);
      const rel = `d${i % 13}/f${i}.bin`;
      fs.mkdirSync(path.join(dir, `d${i % 13}`), { recursive: true });
      fs.writeFileSync(path.join(dir, rel), data);
      content.set(rel, data);
    }
    const manifest = await scanWorkspace(dir, { keepContent: true });
    const files = manifest.entries.filter((e): e is FileEntry => e.type === "file");
    expect(files).toHaveLength(700);
    for (const e of files) {
      const data = content.get(e.path) as Buffer;
      expect(e.size).toBe(data.length);
      expect(e.hash).toBe(createHash("sha256").update(data).digest("hex"));
    }
    expect(manifest.totalBytes).toBe([...content.values()].reduce((n, b) => n + b.length, 0));
    // Sorted as a walk lists them, whichever thread read them.
    const paths = manifest.entries.map((e) => e.path);
    expect(paths).toEqual([...paths].sort());
    // What is packed is what was read: every blob arrives intact.
    const cache = new BlobCache(tempDir());
    const missing = cache.missing(manifest);
    const got = await cache.ingest(chunks(await collect(packBlobs(dir, manifest, missing))), {
      expect: missing,
    });
    expect(got.blobs).toBe(new Set(files.map((e) => e.hash)).size);
  });

  it("lets the process exit once scanned, whether the helper thread was used, started only, or not", () => {
    const index = path.resolve(fileURLToPath(import.meta.url), "../index.ts");
    for (const n of [100, 300, 700]) {
      const dir = tempDir();
      for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, `f${i}`), `file ${i}`);
      // A module file, as a CLI's: what an idle thread holds shows there.
      const script = path.join(tempDir(), "scan.mjs");
      fs.writeFileSync(
        script,
        `const { scanWorkspace } = await import(${JSON.stringify(index)});\n` +
          `const m = await scanWorkspace(${JSON.stringify(dir)});\nconsole.log(m.entries.length);\n`,
      );
      const r = spawnSync(process.execPath, ["--import", "tsx", script], {
        timeout: 20_000,
        encoding: "utf8",
      });
      expect(r.signal, `${n} files: ${r.stderr}`).toBe(null);
      expect(r.stdout.trim()).toBe(String(n));
    }
  });
});

describe("sameManifest", () => {
  it("is true for two scans of an unchanged tree, false once anything differs", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-same-"));
    try {
      fs.mkdirSync(path.join(dir, "d"));
      fs.writeFileSync(path.join(dir, "d", "a.txt"), "a");
      fs.symlinkSync("d/a.txt", path.join(dir, "link"));
      const a = await scanWorkspace(dir);
      const b = await scanWorkspace(dir, { reuse: a });
      expect(sameManifest(a, b)).toBe(true);
      expect(JSON.stringify(a)).toBe(JSON.stringify(b));
      const changed = (f: (m: Manifest) => void) => {
        const m = JSON.parse(JSON.stringify(a)) as Manifest;
        f(m);
        return sameManifest(a, m);
      };
      const file = (m: Manifest) => m.entries.find((e) => e.type === "file") as FileEntry;
      expect(changed((m) => (file(m).hash = "0".repeat(64)))).toBe(false);
      expect(changed((m) => (file(m).mode = 0o755))).toBe(false);
      expect(changed((m) => (file(m).mtimeMs = 1))).toBe(false);
      expect(changed((m) => ((m.entries[0] as DirEntry).mode = 0o700))).toBe(false);
      expect(
        changed(
          (m) => ((m.entries.find((e) => e.type === "symlink") as SymlinkEntry).target = "x"),
        ),
      ).toBe(false);
      expect(changed((m) => m.entries.pop())).toBe(false);
      expect(changed((m) => (m.entries[1]!.path = "d2"))).toBe(false);
      expect(changed(() => {})).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
