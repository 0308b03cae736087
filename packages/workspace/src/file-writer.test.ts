import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { chunks, cleanupTemp, collect, describeTree, tempDir } from "../test-support/helpers.js";
import { FileWriter } from "./file-writer.js";
import { BlobCache, isWorkspaceError, packBlobs, scanWorkspace } from "./index.js";

afterAll(cleanupTemp);

/** A tree large enough for the writer thread: 700 files, duplicates, modes, a large blob, links. */
function bigTree(dir: string): void {
  const old = new Date(Date.now() - 3_600_000);
  for (let i = 0; i < 700; i++) {
    const sub = path.join(dir, `d${i % 13}`, `e${i % 5}`);
    fs.mkdirSync(sub, { recursive: true });
    const f = path.join(sub, `f${i}.txt`);
    // Every tenth file has the content of another: one blob, several files.
    fs.writeFileSync(f, i % 10 === 0 ? "same content" : `file ${i} `.repeat(1 + (i % 50)));
    fs.chmodSync(f, i % 7 === 0 ? 0o755 : i % 11 === 0 ? 0o600 : 0o644);
    fs.utimesSync(f, old, old);
  }
  const big = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < big.length; i += 512) big.writeUInt32LE(i, i);
  fs.writeFileSync(path.join(dir, "big.bin"), big);
  fs.symlinkSync("d1/e1/f1.txt", path.join(dir, "link"));
  fs.mkdirSync(path.join(dir, "ro"), { mode: 0o555 });
}

describe("builds on the file writer thread", () => {
  it("rebuilds a large tree from arriving blobs and from the cache, modes, mtimes and links included", async () => {
    const src = tempDir();
    bigTree(src);
    const manifest = await scanWorkspace(src);
    const cache = new BlobCache(tempDir());
    const missing = cache.missing(manifest);
    const archive = await collect(packBlobs(src, manifest, missing));
    const first = path.join(tempDir(), "w1");
    const got = await cache.receive(manifest, first, chunks(archive, 64 * 1024), {
      expect: missing,
    });
    expect(got.written).toBe(701);
    expect(describeTree(first)).toEqual(describeTree(src));
    // mtimes travel, so the next scan trusts size and mtime.
    const mt = (d: string) => fs.statSync(path.join(d, "d3/e3/f3.txt")).mtimeMs;
    expect(Math.round(mt(first))).toBe(Math.round(mt(src)));
    // Again from the cache alone (blobs read from the packs by the thread).
    const second = path.join(tempDir(), "w2");
    expect(await cache.materialize(manifest, second)).toEqual({ written: 701, kept: 0 });
    expect(describeTree(second)).toEqual(describeTree(src));
  });

  it("fails with SLOTH_BLOB_MISSING, naming the file, when the thread finds a pack cut short", async () => {
    const src = tempDir();
    bigTree(src);
    const manifest = await scanWorkspace(src);
    const cache = new BlobCache(tempDir());
    await cache.ingest(chunks(await collect(packBlobs(src, manifest, cache.missing(manifest)))));
    // A pack cut short under the cache: the thread reads past its end.
    for (const f of fs.readdirSync(path.join(cache.dir, "packs")))
      if (f.endsWith(".pack")) {
        const p = path.join(cache.dir, "packs", f);
        fs.chmodSync(p, 0o644);
        fs.truncateSync(p, 1000);
      }
    const target = path.join(tempDir(), "w");
    const e = await cache.materialize(manifest, target).catch((x: unknown) => x);
    expect(isWorkspaceError(e, "SLOTH_BLOB_MISSING")).toBe(true);
    expect((e as Error).message).toMatch(
      /^cannot materialize "[^/"][^"]*": its blob cannot be read from the cache \(the cache file ended early\)$/,
    );
  });
});

describe("FileWriter", () => {
  it("creates files new only, never through a symlink, and reports the first failure at drain", async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, "taken"), "x");
    fs.symlinkSync("/etc/passwd", path.join(dir, "link"));
    const w = new FileWriter(dir);
    w.write(path.join(dir, "a"), 0o640, 1_000_000, { data: Buffer.from("hello") });
    w.write(path.join(dir, "b"), 0o600, undefined, { data: Buffer.from("hello") });
    w.write(path.join(dir, "taken"), 0o644, undefined, { data: Buffer.from("new") });
    await expect(w.drain()).rejects.toThrow(/^cannot write .*\/taken: EEXIST/);
    expect(fs.readFileSync(path.join(dir, "taken"), "utf8")).toBe("x");
    expect(fs.readFileSync(path.join(dir, "b"), "utf8")).toBe("hello");
    expect(fs.statSync(path.join(dir, "a")).mode & 0o777).toBe(0o640);
    expect(fs.statSync(path.join(dir, "a")).mtimeMs).toBe(1_000_000);
    const v = new FileWriter(dir);
    v.write(path.join(dir, "link"), 0o644, undefined, { data: Buffer.from("bad") });
    await expect(v.drain()).rejects.toThrow(/cannot write .*\/link: (EEXIST|ELOOP)/);
    expect(fs.readFileSync("/etc/passwd", "utf8")).not.toContain("bad");
    expect(() =>
      new FileWriter(dir).write("/tmp/elsewhere", 0o644, undefined, { data: Buffer.from("x") }),
    ).toThrow(/not under/);
  });

  it("refuses a file whose parent was swapped for a link after it was queued", async () => {
    const dir = tempDir();
    const outside = tempDir();
    fs.mkdirSync(path.join(dir, "sub"));
    const w = new FileWriter(dir);
    // Queued while sub/ is a real folder, then sub/ becomes a link leaving the tree.
    w.write(path.join(dir, "sub", "f"), 0o644, undefined, { data: Buffer.from("data") });
    fs.rmdirSync(path.join(dir, "sub"));
    fs.symlinkSync(outside, path.join(dir, "sub"));
    await expect(w.drain()).rejects.toThrow(/a parent folder was replaced by a link/);
    expect(fs.readdirSync(outside)).toEqual([]);
  });
});

describe("builds on the file writer thread: hostile and odd manifests", () => {
  it("refuses a manifest whose size for an arriving blob is not the blob's, writing no stray bytes", async () => {
    const src = tempDir();
    bigTree(src);
    const manifest = await scanWorkspace(src);
    const cache = new BlobCache(tempDir());
    const missing = cache.missing(manifest);
    const archive = await collect(packBlobs(src, manifest, missing));
    // The runner lies about one small file's size.
    const lie = manifest.entries.find((e) => e.type === "file" && e.size > 0 && e.size < 1000);
    if (lie?.type !== "file") throw new Error("no small file");
    lie.size = 1_000_000;
    const target = path.join(tempDir(), "w");
    const e = await cache
      .receive(manifest, target, chunks(archive), { expect: missing })
      .catch((x: unknown) => x);
    expect(
      isWorkspaceError(e, "SLOTH_BLOB_MISMATCH") || isWorkspaceError(e, "SLOTH_BLOB_MISSING"),
    ).toBe(true);
    expect(
      fs.existsSync(path.join(target, lie.path))
        ? fs.statSync(path.join(target, lie.path)).size
        : 0,
    ).toBeLessThan(1000);
  });

  it("builds 1,500 files sharing a few blobs (more than a batch holds)", async () => {
    const src = tempDir();
    for (let i = 0; i < 1500; i++) {
      const sub = path.join(src, `p${i % 30}`);
      fs.mkdirSync(sub, { recursive: true });
      fs.writeFileSync(path.join(sub, `__init__${i}.py`), i % 2 === 0 ? "" : "# same\n");
    }
    const manifest = await scanWorkspace(src);
    const cache = new BlobCache(tempDir());
    const missing = cache.missing(manifest);
    expect(missing).toHaveLength(2);
    const archive = await collect(packBlobs(src, manifest, missing));
    const target = path.join(tempDir(), "w");
    const got = await cache.receive(manifest, target, chunks(archive), { expect: missing });
    expect(got.written).toBe(1500);
    expect(describeTree(target)).toEqual(describeTree(src));
  });
});
