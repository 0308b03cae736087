import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  chunks,
  cleanupTemp,
  collect,
  describeTree,
  tempDir,
  writeTree,
} from "../test-support/helpers.js";
import { BlobCache, isWorkspaceError, type Manifest, packBlobs, scanWorkspace } from "./index.js";

afterAll(cleanupTemp);

async function fill(cache: BlobCache, src: string): Promise<Manifest> {
  const m = await scanWorkspace(src);
  const missing = cache.missing(m);
  await cache.ingest(chunks(await collect(packBlobs(src, m, missing))), { expect: missing });
  return m;
}

describe("BlobCache", () => {
  it("recycles a workspace its task changed back into the manifest's exact state", async () => {
    const src = tempDir();
    writeTree(src, {
      "keep.txt": "k",
      "mod.txt": "original",
      "gone.txt": "g",
      "dir/inner.txt": "i",
      "dir/sub/deep.txt": "d",
      "script.sh": { mode: 0o755, content: "echo" },
      link: { link: "keep.txt" },
      "becomes-file/x": "x",
    });
    const cache = new BlobCache(tempDir());
    const m = await fill(cache, src);
    const root = tempDir();
    const first = path.join(root, "w1");
    expect(await cache.materialize(m, first)).toEqual({ written: 7, kept: 0 });
    // What a task might leave behind:
    fs.writeFileSync(path.join(first, "mod.txt"), "modified");
    fs.writeFileSync(path.join(first, "added.txt"), "added");
    fs.rmSync(path.join(first, "gone.txt"));
    fs.chmodSync(path.join(first, "script.sh"), 0o600);
    fs.rmSync(path.join(first, "link"));
    fs.symlinkSync("/etc/passwd", path.join(first, "link"));
    fs.symlinkSync("../../outside", path.join(first, "dir/escape"));
    fs.rmSync(path.join(first, "becomes-file"), { recursive: true });
    fs.writeFileSync(path.join(first, "becomes-file"), "now a file");
    fs.mkdirSync(path.join(first, "node_modules/pkg"), { recursive: true });
    fs.writeFileSync(path.join(first, "node_modules/pkg/index.js"), "x");
    execFileSync("mkfifo", [path.join(first, "dir/pipe")]);
    const second = path.join(root, "w2");
    const r = await cache.materialize(m, second, { recycle: first });
    expect(fs.existsSync(first)).toBe(false);
    expect(r.written).toBe(3); // mod.txt, gone.txt, becomes-file/x
    expect(describeTree(second)).toEqual(describeTree(src));
  });

  it("recycles a folder holding names that are not UTF-8, with or without a record of its build", async () => {
    const src = tempDir();
    writeTree(src, { "a.txt": "a", "d/b.txt": "b" });
    for (const known of [true, false]) {
      const cache = new BlobCache(tempDir());
      const m = await fill(cache, src);
      const root = tempDir();
      const first = path.join(root, "w1");
      // Built here (a record to check against), or a folder this cache never built.
      if (known) await cache.materialize(m, first);
      else execFileSync("cp", ["-a", src, first]);
      const bad = (rel: string) =>
        Buffer.concat([Buffer.from(`${first}/`), Buffer.from(rel, "latin1")]);
      fs.writeFileSync(bad("x\xff.txt"), "x");
      fs.mkdirSync(bad("d/sub\xfe"));
      fs.writeFileSync(Buffer.concat([bad("d/sub\xfe"), Buffer.from("/f")]), "f");
      fs.symlinkSync("/etc", bad("d/link\xfd"));
      const second = path.join(root, "w2");
      await cache.materialize(m, second, { recycle: first });
      expect(describeTree(second)).toEqual(describeTree(src));
      expect(fs.readdirSync(second, { encoding: "buffer" })).toHaveLength(2);
      expect(fs.readdirSync(path.join(second, "d"), { encoding: "buffer" })).toHaveLength(1);
    }
  });

  it("recycling an unchanged workspace writes nothing", async () => {
    const src = tempDir();
    const files: Record<string, string> = {};
    for (let i = 0; i < 40; i++) files[`d${i % 4}/f${i}`] = `file ${i}`;
    writeTree(src, files);
    const old = new Date(Date.now() - 60_000);
    for (const f of Object.keys(files)) fs.utimesSync(path.join(src, f), old, old);
    const cache = new BlobCache(tempDir());
    const m = await fill(cache, src);
    const root = tempDir();
    await cache.materialize(m, path.join(root, "a"));
    const r = await cache.materialize(m, path.join(root, "b"), { recycle: path.join(root, "a") });
    expect(r).toEqual({ written: 0, kept: 40, checkedAt: expect.any(Number) });
    expect(describeTree(path.join(root, "b"))).toEqual(describeTree(src));
    // Repairing in place: the directory given as both.
    fs.writeFileSync(path.join(root, "b/d1/f1"), "edited");
    const again = await cache.materialize(m, path.join(root, "b"), {
      recycle: path.join(root, "b"),
    });
    expect(again).toEqual({ written: 1, kept: 39, checkedAt: expect.any(Number) });
    expect(describeTree(path.join(root, "b"))).toEqual(describeTree(src));
  });

  it("recycling trusts only what ctime shows untouched since the build: a same-size, same-mtime rewrite is caught", async () => {
    const src = tempDir();
    const files: Record<string, string> = {};
    for (let i = 0; i < 30; i++) files[`d${i % 3}/e${i % 2}/f${i}`] = `file ${i}`;
    writeTree(src, files);
    const old = new Date(Date.now() - 60_000);
    for (const f of Object.keys(files)) fs.utimesSync(path.join(src, f), old, old);
    const cache = new BlobCache(tempDir());
    const m = await fill(cache, src);
    const root = tempDir();
    const at = (n: number) => path.join(root, `w${n}`);
    await cache.materialize(m, at(1));
    await new Promise((r) => setTimeout(r, 60));
    expect(await cache.materialize(m, at(2), { recycle: at(1) })).toEqual({
      written: 0,
      kept: 30,
      checkedAt: expect.any(Number),
    });
    await new Promise((r) => setTimeout(r, 60));
    // A task rewrites a file keeping its size and mtime (tar -x, cp -p would).
    const victim = path.join(at(2), "d1/e0/f4");
    fs.writeFileSync(victim, "FILE 4");
    fs.utimesSync(victim, old, old);
    fs.mkdirSync(path.join(at(2), "d2/e1/new"));
    fs.writeFileSync(path.join(at(2), "d2/e1/new/x"), "x");
    fs.writeFileSync(path.join(at(2), "d0/extra"), "x");
    fs.rmSync(path.join(at(2), "d0/e1"), { recursive: true });
    const r = await cache.materialize(m, at(3), { recycle: at(2) });
    expect(r.written).toBe(1 + 5); // the rewritten file, and d0/e1's five
    expect(describeTree(at(3))).toEqual(describeTree(src));
  });

  it("recycles with a check started before the manifest came (inspect), to the same exact result", async () => {
    const src = tempDir();
    const files: Record<string, string> = {};
    for (let i = 0; i < 30; i++) files[`d${i % 3}/f${i}`] = `file ${i}`;
    writeTree(src, files);
    const old = new Date(Date.now() - 60_000);
    for (const f of Object.keys(files)) fs.utimesSync(path.join(src, f), old, old);
    const cache = new BlobCache(tempDir());
    const m = await fill(cache, src);
    const root = tempDir();
    const at = (n: number) => path.join(root, `w${n}`);
    await cache.materialize(m, at(1));
    await new Promise((r) => setTimeout(r, 60));
    // What the task left: one file changed, one added, one removed.
    fs.writeFileSync(path.join(at(1), "d0/f3"), "changed");
    fs.writeFileSync(path.join(at(1), "d1/new"), "new");
    fs.rmSync(path.join(at(1), "d2/f5"));
    cache.inspect(at(1));
    // Inspecting a directory the cache never built does nothing.
    cache.inspect(path.join(root, "unknown"));
    const r = await cache.materialize(m, at(2), { recycle: at(1) });
    expect(r).toEqual({ written: 2, kept: 28, checkedAt: expect.any(Number) });
    expect(describeTree(at(2))).toEqual(describeTree(src));
  });

  it("lets a check still under way end before it moves the directory it checks", async () => {
    const src = tempDir();
    const files: Record<string, string> = {};
    for (let i = 0; i < 2000; i++) files[`d${i % 40}/f${i}`] = `file ${i}`.padEnd(16384, ".");
    writeTree(src, files);
    const old = new Date(Date.now() - 60_000);
    for (const f of Object.keys(files)) fs.utimesSync(path.join(src, f), old, old);
    const cache = new BlobCache(tempDir());
    const m = await fill(cache, src);
    const root = tempDir();
    const at = (n: number) => path.join(root, `w${n}`);
    await cache.materialize(m, at(1));
    await new Promise((r) => setTimeout(r, 60));
    // Touched since the build (same content): the check reads each file, yielding as it goes,
    // and the manifest comes while it is still walking w1.
    const now = new Date();
    for (const f of Object.keys(files)) fs.utimesSync(path.join(at(1), f), now, now);
    const inspected = Date.now();
    cache.inspect(at(1));
    const asked = Date.now();
    const r = await cache.materialize(m, at(2), { recycle: at(1) });
    expect(r).toEqual({ written: 0, kept: 2000, checkedAt: expect.any(Number) });
    // When inspect began the check, not when the build ended.
    expect(r.checkedAt).toBeGreaterThanOrEqual(inspected);
    expect(r.checkedAt).toBeLessThanOrEqual(asked);
    expect(describeTree(at(2))).toEqual(describeTree(src));
  });

  it("is shared by two instances on one folder (two agent processes)", async () => {
    const src = tempDir();
    writeTree(src, { a: "a", b: "b" });
    const dir = tempDir();
    const one = new BlobCache(dir);
    const two = new BlobCache(dir);
    const m = await scanWorkspace(src);
    expect(two.missing(m)).toHaveLength(2);
    await fill(one, src);
    expect(two.missing(m)).toEqual([]);
    await two.materialize(m, path.join(tempDir(), "w"));
  });

  it("prunes the least recently used packs, sparing what a manifest needs", async () => {
    const dir = tempDir();
    const cache = new BlobCache(dir);
    const manifests: Manifest[] = [];
    for (let i = 0; i < 3; i++) {
      const src = tempDir();
      writeTree(src, { [`f${i}`]: String(i).repeat(1000) });
      manifests.push(await fill(cache, src));
      const t = new Date(Date.now() - (10 - i) * 60_000);
      for (const n of fs.readdirSync(path.join(dir, "packs")))
        if (
          n.endsWith(".pack") &&
          fs.statSync(path.join(dir, "packs", n)).mtimeMs > Date.now() - 5000
        )
          fs.utimesSync(path.join(dir, "packs", n), t, t);
    }
    expect(cache.size()).toBe(3000);
    const keep = new Set(manifests[0]?.entries.map((e) => (e.type === "file" ? e.hash : "")));
    expect(cache.prune(1500, keep)).toEqual({ removed: 2, bytes: 2000 });
    expect(cache.missing(manifests[0] as Manifest)).toEqual([]);
    expect(cache.missing(manifests[1] as Manifest)).toHaveLength(1);
    expect(cache.missing(manifests[2] as Manifest)).toHaveLength(1);
  });

  it("bounds itself after materialize when maxBytes is set", async () => {
    const dir = tempDir();
    const bounded = new BlobCache(dir, { maxBytes: 1 });
    const src = tempDir();
    writeTree(src, { a: "x".repeat(100) });
    const m = await fill(bounded, src);
    const other = tempDir();
    writeTree(other, { b: "y".repeat(100) });
    const m2 = await fill(bounded, other);
    await bounded.materialize(m2, path.join(tempDir(), "w"));
    expect(bounded.missing(m2)).toEqual([]);
    expect(bounded.missing(m)).toHaveLength(1);
  });
});

describe("BlobCache.receive", () => {
  it("builds the workspace while the missing blobs arrive, from cache for the rest", async () => {
    const src = tempDir();
    writeTree(src, {
      "a/cached.txt": "cached",
      "b/new.txt": "new",
      "b/same.txt": "new",
      l: { link: "a" },
    });
    const cache = new BlobCache(tempDir());
    const pre = tempDir();
    writeTree(pre, { x: "cached" });
    await fill(cache, pre);
    const m = await scanWorkspace(src);
    const missing = cache.missing(m);
    expect(missing).toHaveLength(1);
    const work = path.join(tempDir(), "w");
    const r = await cache.receive(m, work, chunks(await collect(packBlobs(src, m, missing))), {
      expect: missing,
    });
    expect(r).toEqual({ written: 3, kept: 0, blobs: 1, bytes: 3 });
    expect(describeTree(work)).toEqual(describeTree(src));
  });

  it("writes large blobs through the pack and small ones from memory, duplicates included", async () => {
    const src = tempDir();
    const big = Buffer.alloc(3 * 1024 * 1024 + 7);
    for (let i = 0; i < big.length; i += 512) big[i] = i % 251;
    const files: Record<string, Buffer | string> = { "big.bin": big, "big-copy.bin": big };
    for (let i = 0; i < 600; i++) files[`s/f${i}`] = `small ${i % 300}`.repeat(2000);
    writeTree(src, files);
    const cache = new BlobCache(tempDir());
    const m = await scanWorkspace(src);
    const missing = cache.missing(m);
    expect(missing).toHaveLength(301);
    const work = path.join(tempDir(), "w");
    const archive = await collect(packBlobs(src, m, missing));
    const r = await cache.receive(m, work, chunks(archive, 65536), { expect: missing });
    expect(r.written).toBe(602);
    expect(describeTree(work)).toEqual(describeTree(src));
    // Everything received is in the cache for the next workspace.
    expect(cache.missing(m)).toEqual([]);
    const again = path.join(tempDir(), "w2");
    await cache.materialize(m, again);
    expect(describeTree(again)).toEqual(describeTree(src));
  });

  it("stores more tiny blobs in one batch than one gathering write takes", async () => {
    const src = tempDir();
    const files: Record<string, string> = {};
    for (let i = 0; i < 1500; i++) files[`d${i % 10}/f${i}`] = `tiny ${i}`;
    writeTree(src, files);
    const cache = new BlobCache(tempDir());
    const m = await fill(cache, src);
    const work = path.join(tempDir(), "w");
    await cache.materialize(m, work);
    expect(describeTree(work)).toEqual(describeTree(src));
  });

  it("builds started before an upload get their files from any ingest of the cache", async () => {
    const src = tempDir();
    writeTree(src, { "a/one.txt": "one", "b/two.txt": "two", "c/empty": null });
    const cache = new BlobCache(tempDir());
    const m = await scanWorkspace(src);
    const missing = cache.missing(m);
    const root = tempDir();
    // Two tasks of the same source prepared at once, one upload.
    const first = cache.build(m, path.join(root, "w1"));
    const second = cache.build(m, path.join(root, "w2"));
    await cache.ingest(chunks(await collect(packBlobs(src, m, missing)), 5), { expect: missing });
    expect(await first.finish()).toEqual({ written: 2, kept: 0 });
    expect(await second.finish()).toEqual({ written: 2, kept: 0 });
    expect(describeTree(path.join(root, "w1"))).toEqual(describeTree(src));
    expect(describeTree(path.join(root, "w2"))).toEqual(describeTree(src));
    // An aborted build no longer receives blobs.
    writeTree(src, { "d/three.txt": "three" });
    const m2 = await scanWorkspace(src);
    const gone = cache.build(m2, path.join(root, "w3"));
    await gone.abort();
    const more = cache.missing(m2);
    await cache.ingest(chunks(await collect(packBlobs(src, m2, more))), { expect: more });
    expect(fs.existsSync(path.join(root, "w3/d/three.txt"))).toBe(false);
  });

  it("fails naming the file whose blob never came", async () => {
    const src = tempDir();
    writeTree(src, { "a.txt": "a", "b.txt": "b" });
    const cache = new BlobCache(tempDir());
    const m = await scanWorkspace(src);
    const [first] = cache.missing(m);
    const e = await cache
      .receive(
        m,
        path.join(tempDir(), "w"),
        chunks(await collect(packBlobs(src, m, [first as string]))),
      )
      .catch((err: unknown) => err);
    expect(isWorkspaceError(e, "SLOTH_BLOB_MISSING")).toBe(true);
  });
});
