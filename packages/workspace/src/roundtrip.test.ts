import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import tar from "tar-stream";
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
import {
  applyChanges,
  BlobCache,
  diffWorkspace,
  packBlobs,
  packChanges,
  releaseContent,
  scanWorkspace,
} from "./index.js";

afterAll(cleanupTemp);

/** Runner → agent: scan, ask the cache what is missing, pack, ingest, materialize. */
async function send(src: string, cache: BlobCache, gzip = false, bundle = false) {
  const manifest = await scanWorkspace(src);
  const missing = cache.missing(manifest);
  const archive = await collect(packBlobs(src, manifest, missing, { gzip, bundle }));
  const got = await cache.ingest(chunks(archive), { gzip, expect: missing });
  const work = path.join(tempDir(), "work");
  await cache.materialize(manifest, work);
  return { manifest, missing, archive, got, work };
}

describe("round trip", () => {
  it("rebuilds files, modes, empty dirs, symlinks, unicode names, empty and large files", async () => {
    const src = tempDir();
    const big = Buffer.alloc(9 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE((i * 2654435761) >>> 0, i);
    writeTree(src, {
      "a.txt": "hello",
      "empty.txt": "",
      "bin/run.sh": { mode: 0o755, content: "#!/bin/sh\necho hi\n" },
      "secret.txt": { mode: 0o600, content: "s" },
      "empty-dir": null,
      "deep/er/still/file.md": "deep",
      "héllo wörld/日本語.txt": "unicode",
      [`${"long-name-".repeat(12)}/x`]: "long path",
      "big.bin": big,
      "link-to-a": { link: "a.txt" },
      "deep/er/up": { link: "../../bin/run.sh" },
      "dir-link": { link: "deep" },
      dangling: { link: "nowhere" },
    });
    fs.chmodSync(path.join(src, "empty-dir"), 0o750);
    for (const gzip of [false, true]) {
      const cache = new BlobCache(tempDir());
      const { work, got, manifest } = await send(src, cache, gzip);
      expect(describeTree(work)).toEqual(describeTree(src));
      expect(got.blobs).toBe(
        new Set(manifest.entries.flatMap((e) => (e.type === "file" ? [e.hash] : []))).size,
      );
      expect(fs.readFileSync(path.join(work, "big.bin")).equals(big)).toBe(true);
    }
  });

  it("sends small blobs in bundles, each checked and stored on its own", async () => {
    const src = tempDir();
    const spec: Record<string, string | Buffer> = {
      "empty.txt": "",
      "same-1": "same",
      "same-2": "same",
    };
    // 600 files of 0 to 6 KiB (several bundles), one just over the bundle limit and one under.
    for (let i = 0; i < 600; i++) spec[`d${i % 9}/f${i}`] = `${i}:`.repeat((i * 37) % 2000);
    spec["over.bin"] = Buffer.alloc(256 * 1024 + 1, 7);
    spec["under.bin"] = Buffer.alloc(256 * 1024, 9);
    writeTree(src, spec);
    for (const gzip of [false, true]) {
      const cache = new BlobCache(tempDir());
      const { work, got, manifest, archive } = await send(src, cache, gzip, true);
      expect(describeTree(work)).toEqual(describeTree(src));
      const hashes = new Set(manifest.entries.flatMap((e) => (e.type === "file" ? [e.hash] : [])));
      expect(got.blobs).toBe(hashes.size);
      for (const h of hashes) expect(cache.has(h)).toBe(true);
      // Far fewer tar entries than blobs: the point of bundles.
      const names: string[] = [];
      const plain = gzip ? zlib.gunzipSync(archive) : archive;
      const ex = tar.extract();
      ex.on("entry", (h, stream, next) => {
        names.push(h.name);
        stream.resume();
        stream.on("end", next);
      });
      await new Promise((resolve, reject) =>
        ex.on("finish", resolve).on("error", reject).end(plain),
      );
      expect(names.length).toBeLessThan(hashes.size / 10);
      expect(names.filter((n) => /^[0-9a-f]{64}$/.test(n))).toHaveLength(1); // over.bin, alone
    }
  });

  it("excludes .git by default, exclude globs and .slothignore", async () => {
    const src = tempDir();
    writeTree(src, {
      ".git/config": "x",
      "sub/.git": "gitdir: elsewhere",
      ".slothignore": "*.log\n/build/\n",
      "keep.txt": "k",
      "a.log": "l",
      "build/out.o": "o",
      "src/build/kept.c": "c",
      "node_modules/m/index.js": "m",
      "tmp/x": "t",
    });
    const m = await scanWorkspace(src, { exclude: ["node_modules/", "tmp"] });
    expect(m.entries.map((e) => e.path)).toEqual([
      ".slothignore",
      "keep.txt",
      "src",
      "src/build",
      "src/build/kept.c",
      "sub",
    ]);
    const withGit = await scanWorkspace(src, { includeGit: true, ignoreFile: "none" });
    expect(withGit.entries.map((e) => e.path)).toContain(".git/config");
    expect(withGit.entries.map((e) => e.path)).toContain("a.log");
  });

  it("sends nothing on an unchanged second sync and one blob for one changed file", async () => {
    const src = tempDir();
    const files: Record<string, string> = {};
    for (let i = 0; i < 50; i++) files[`d${i % 5}/f${i}.txt`] = `content ${i}`;
    files["dup-1"] = "same";
    files["dup-2"] = "same";
    writeTree(src, files);
    const cache = new BlobCache(tempDir());
    const first = await send(src, cache);
    expect(first.got.blobs).toBe(51);
    const second = await send(src, cache);
    expect(second.missing).toEqual([]);
    expect(second.got).toEqual({ blobs: 0, bytes: 0 });
    expect(second.archive.length).toBe(1024); // the end-of-archive marker only
    fs.writeFileSync(path.join(src, "d1/f1.txt"), "changed");
    const third = await send(src, cache);
    expect(third.missing).toHaveLength(1);
    expect(third.got).toEqual({ blobs: 1, bytes: 7 });
    expect(describeTree(third.work)).toEqual(describeTree(src));
  });

  it("brings the agent's changes back: added, modified, deleted, mode, symlink, type change", async () => {
    const src = tempDir();
    writeTree(src, {
      "keep.txt": "k",
      "mod.txt": "old",
      "gone.txt": "bye",
      "gone-dir/x": "x",
      "script.sh": "echo",
      link: { link: "keep.txt" },
      "becomes-dir": "file",
      ".git/HEAD": "ref",
    });
    const cache = new BlobCache(tempDir());
    const { work, manifest } = await send(src, cache);
    // The task, on the agent:
    fs.writeFileSync(path.join(work, "mod.txt"), "new content");
    fs.writeFileSync(path.join(work, "added.txt"), "added");
    fs.mkdirSync(path.join(work, "new-dir/empty"), { recursive: true });
    fs.rmSync(path.join(work, "gone.txt"));
    fs.rmSync(path.join(work, "gone-dir"), { recursive: true });
    fs.chmodSync(path.join(work, "script.sh"), 0o755);
    fs.rmSync(path.join(work, "link"));
    fs.symlinkSync("mod.txt", path.join(work, "link"));
    fs.rmSync(path.join(work, "becomes-dir"));
    fs.mkdirSync(path.join(work, "becomes-dir"));
    fs.writeFileSync(path.join(work, "becomes-dir/inner"), "in");
    const changes = await diffWorkspace(work, manifest);
    expect(changes.changed.map((e) => e.path).sort()).toEqual([
      "added.txt",
      "becomes-dir",
      "becomes-dir/inner",
      "link",
      "mod.txt",
      "new-dir",
      "new-dir/empty",
      "script.sh",
    ]);
    expect(changes.deleted).toEqual(["gone.txt", "gone-dir/x", "gone-dir"]);
    const archive = await collect(packChanges(work, changes));
    const r = await applyChanges(src, chunks(archive), changes.deleted, { base: manifest });
    expect(r).toEqual({ written: 8, deleted: 3, skipped: 0 });
    const expected = describeTree(work);
    expected[".git"] = "dir 755";
    expected[".git/HEAD"] = "file 644 ref";
    expect(describeTree(src)).toEqual(expected);
  });

  it("refuses a file name that is not valid UTF-8, naming the fix", async () => {
    const src = tempDir();
    fs.writeFileSync(
      Buffer.concat([Buffer.from(`${src}/bad`), Buffer.from([0xff]), Buffer.from("name")]),
      "x",
    );
    const err = await scanWorkspace(src).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string; hint: string },
    );
    expect(err?.code).toBe("SLOTH_INVALID_ARGUMENT");
    expect(err?.message).toBe('cannot send "bad\uFFFDname": its name is not valid UTF-8');
    expect(err?.hint).toMatch(/rename it, or exclude it/);
  });

  it("brings back a mode of 000 as 000 (not tar's default 0644)", async () => {
    const src = tempDir();
    writeTree(src, { "locked.txt": "x", "also.txt": "y" });
    const cache = new BlobCache(tempDir());
    const { work, manifest } = await send(src, cache);
    fs.chmodSync(path.join(work, "locked.txt"), 0o000);
    fs.writeFileSync(path.join(work, "also.txt"), "changed");
    fs.chmodSync(path.join(work, "also.txt"), 0o000);
    const changes = await diffWorkspace(work, manifest);
    const archive = await collect(packChanges(work, changes));
    await applyChanges(src, chunks(archive), changes.deleted, { base: manifest });
    expect(fs.statSync(path.join(src, "locked.txt")).mode & 0o777).toBe(0);
    expect(fs.statSync(path.join(src, "also.txt")).mode & 0o777).toBe(0);
    fs.chmodSync(path.join(src, "also.txt"), 0o600);
    expect(fs.readFileSync(path.join(src, "also.txt"), "utf8")).toBe("changed");
  });

  it("keeps what changed here while the task ran and names it; applies the rest", async () => {
    const src = tempDir();
    writeTree(src, {
      "both.txt": "base",
      "same.txt": "base",
      "remote-only.txt": "base",
      "deleted-there.txt": "base",
      "deleted-both.txt": "base",
    });
    const cache = new BlobCache(tempDir());
    const { work, manifest } = await send(src, cache);
    // On the agent:
    fs.writeFileSync(path.join(work, "both.txt"), "agent's");
    fs.writeFileSync(path.join(work, "same.txt"), "identical edit");
    fs.writeFileSync(path.join(work, "remote-only.txt"), "agent's");
    fs.writeFileSync(path.join(work, "new.txt"), "agent's new");
    fs.rmSync(path.join(work, "deleted-there.txt"));
    fs.rmSync(path.join(work, "deleted-both.txt"));
    // Here, meanwhile (the user, or another task that finished first):
    fs.writeFileSync(path.join(src, "both.txt"), "mine!");
    fs.writeFileSync(path.join(src, "same.txt"), "identical edit");
    fs.writeFileSync(path.join(src, "new.txt"), "my new");
    fs.writeFileSync(path.join(src, "deleted-there.txt"), "edited here");
    fs.rmSync(path.join(src, "deleted-both.txt"));
    const changes = await diffWorkspace(work, manifest);
    const archive = await collect(packChanges(work, changes));
    const err = await applyChanges(src, chunks(archive), changes.deleted, { base: manifest }).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string; details: { entries: string[] } },
    );
    expect(err?.code).toBe("SLOTH_WORKSPACE_CONFLICT");
    expect(err?.details.entries.sort()).toEqual(["both.txt", "deleted-there.txt", "new.txt"]);
    expect(err?.message).toMatch(
      /^cannot apply the changes to 3 path\(s\) that changed here while the task ran: /,
    );
    const read = (f: string) => fs.readFileSync(path.join(src, f), "utf8");
    expect(read("both.txt")).toBe("mine!");
    expect(read("new.txt")).toBe("my new");
    expect(read("deleted-there.txt")).toBe("edited here");
    expect(read("same.txt")).toBe("identical edit");
    expect(read("remote-only.txt")).toBe("agent's");
    expect(fs.existsSync(path.join(src, "deleted-both.txt"))).toBe(false);
    expect(fs.readdirSync(src).filter((n) => n.includes(".sloth-"))).toEqual([]);
    // Asked to, the agent's version wins.
    await applyChanges(src, chunks(archive), changes.deleted, {
      base: manifest,
      conflicts: "overwrite",
    });
    expect(read("both.txt")).toBe("agent's");
    expect(fs.existsSync(path.join(src, "deleted-there.txt"))).toBe(false);
  });

  it("diff trusts size and mtime from the base and re-reads the rest", async () => {
    const src = tempDir();
    writeTree(src, { "a.txt": "aaaa", "b.txt": "bbbb" });
    const old = new Date(Date.now() - 60_000);
    for (const f of ["a.txt", "b.txt"]) fs.utimesSync(path.join(src, f), old, old);
    const base = await scanWorkspace(src);
    expect(base.entries.every((e) => e.type !== "file" || e.mtimeMs !== undefined)).toBe(true);
    // Same size, same mtime, other content: trusted (the cost of not reading).
    fs.writeFileSync(path.join(src, "a.txt"), "AAAA");
    fs.utimesSync(path.join(src, "a.txt"), old, old);
    // Same size, new mtime: read and found changed.
    fs.writeFileSync(path.join(src, "b.txt"), "BBBB");
    const changes = await diffWorkspace(src, base);
    expect(changes.changed.map((e) => e.path)).toEqual(["b.txt"]);
  });
});

it("keepContent: packs the bytes the scan and the diff hashed, without reading the files again", async () => {
  const src = tempDir();
  writeTree(src, { "a.txt": "alpha", "big.bin": Buffer.alloc(2 * 1024 * 1024, 7) });
  const manifest = await scanWorkspace(src, { keepContent: true });
  // Rewritten after the scan with the same size: what was hashed is what is sent.
  fs.writeFileSync(path.join(src, "a.txt"), "ALPHA");
  const cache = new BlobCache(tempDir());
  const missing = cache.missing(manifest);
  await cache.ingest(chunks(await collect(packBlobs(src, manifest, missing))), { expect: missing });
  const work = path.join(tempDir(), "work");
  await cache.materialize(manifest, work);
  expect(fs.readFileSync(path.join(work, "a.txt"), "utf8")).toBe("alpha");
  expect(fs.statSync(path.join(work, "big.bin")).size).toBe(2 * 1024 * 1024);
  // Packed once: a second pack reads the files (and finds the rewrite).
  const again = await collect(packBlobs(src, manifest, missing));
  expect(again.includes(Buffer.from("ALPHA"))).toBe(true);

  // The agent's side: the changed files' bytes as the diff hashed them.
  fs.writeFileSync(path.join(work, "a.txt"), "gamma");
  fs.writeFileSync(path.join(work, "new.txt"), "new");
  const changes = await diffWorkspace(work, manifest, { keepContent: true });
  expect(changes.changed.map((e) => e.path).sort()).toEqual(["a.txt", "new.txt"]);
  fs.writeFileSync(path.join(work, "a.txt"), "GAMMA");
  const back = tempDir();
  writeTree(back, { "a.txt": "alpha", "big.bin": Buffer.alloc(2 * 1024 * 1024, 7) });
  await applyChanges(back, chunks(await collect(packChanges(work, changes))), changes.deleted, {
    base: manifest,
    conflicts: "overwrite",
  });
  expect(fs.readFileSync(path.join(back, "a.txt"), "utf8")).toBe("gamma");
  expect(fs.readFileSync(path.join(back, "new.txt"), "utf8")).toBe("new");
  // Kept content not packed is let go without error.
  const unused = await scanWorkspace(src, { keepContent: true });
  releaseContent(unused);
  releaseContent(unused);
});

it("replaces changed files, never writing into them: running scripts and programs and hard links keep the old content", async () => {
  const root = tempDir();
  const src = path.join(root, "work");
  const script = "#!/bin/bash\necho > started.txt\nsleep 2\necho old-line-runs > out.txt\n";
  writeTree(src, { "mod.txt": "0123456789".repeat(10), "linked.txt": "shared", "run.sh": script });
  // A hard link outside the workdir must keep its content.
  fs.linkSync(path.join(src, "linked.txt"), path.join(root, "elsewhere"));
  // A program running from the workdir, and a script bash reads as it goes.
  fs.copyFileSync("/bin/sleep", path.join(src, "prog"));
  fs.chmodSync(path.join(src, "prog"), 0o755);
  const running = spawn(path.join(src, "prog"), ["30"], { stdio: "ignore" });
  const bash = spawn("bash", ["run.sh"], { cwd: src, stdio: "ignore" });
  const bashExit = new Promise((r) => bash.once("exit", r));
  try {
    await new Promise((r) => running.once("spawn", r));
    // bash has the script open once it ran its first line.
    for (let i = 0; i < 400 && !fs.existsSync(path.join(src, "started.txt")); i++)
      await new Promise((r) => setTimeout(r, 25));
    const ino = (p: string) => fs.statSync(path.join(src, p)).ino;
    const before = { mod: ino("mod.txt"), linked: ino("linked.txt"), prog: ino("prog") };
    const archive = await craftTar([
      { name: "mod.txt", content: "short", mode: 0o600 },
      { name: "linked.txt", content: "mine" },
      { name: "prog", content: "#!/bin/sh\n", mode: 0o755 },
      { name: "run.sh", content: script.replace("echo old-line-runs", "echo new-line-ran") },
    ]);
    const r = await applyChanges(src, chunks(archive), []);
    expect(r.written).toBe(4);
    expect(fs.readFileSync(path.join(src, "mod.txt"), "utf8")).toBe("short");
    expect(fs.statSync(path.join(src, "mod.txt")).mode & 0o777).toBe(0o600);
    expect(ino("mod.txt")).not.toBe(before.mod);
    expect(fs.readFileSync(path.join(src, "linked.txt"), "utf8")).toBe("mine");
    expect(fs.readFileSync(path.join(root, "elsewhere"), "utf8")).toBe("shared");
    expect(fs.readFileSync(path.join(src, "prog"), "utf8")).toBe("#!/bin/sh\n");
    expect(ino("prog")).not.toBe(before.prog);
    expect(running.exitCode).toBe(null);
    // The script already running goes on with the text it started with.
    expect(await bashExit).toBe(0);
    expect(fs.readFileSync(path.join(src, "out.txt"), "utf8")).toBe("old-line-runs\n");
    expect(fs.readdirSync(src).sort()).toEqual([
      "linked.txt",
      "mod.txt",
      "out.txt",
      "prog",
      "run.sh",
      "started.txt",
    ]);
  } finally {
    running.kill();
    bash.kill();
  }
});

it("a materialized workspace keeps the sender's mtimes, so the agent's diff reads no unchanged file", async () => {
  const src = tempDir();
  const files: Record<string, string> = {};
  for (let i = 0; i < 200; i++) files[`f${i}`] = `content ${i}`;
  writeTree(src, files);
  for (let i = 0; i < 200; i++) {
    // Milliseconds that do not survive a round trip through seconds exactly.
    const t = (1_700_000_000_000 + i * 7_919_123) / 1000;
    fs.utimesSync(path.join(src, `f${i}`), t, t);
  }
  const cache = new BlobCache(tempDir());
  const { manifest, work } = await send(src, cache);
  // A base whose hashes are all wrong: only files trusted by size+mtime keep them.
  const fake = "0".repeat(64);
  const base = {
    ...manifest,
    entries: manifest.entries.map((e) => (e.type === "file" ? { ...e, hash: fake } : e)),
  };
  expect((await diffWorkspace(work, base)).changed).toEqual([]);
});

it("lets a consumer stop reading a pack early, gzip or not", async () => {
  const src = tempDir();
  const files: Record<string, Buffer> = { big: Buffer.alloc(9 << 20, 1) };
  for (let i = 0; i < 30; i++) files[`f${i}`] = Buffer.alloc(300_000 + i, i);
  writeTree(src, files);
  const m = await scanWorkspace(src);
  const hashes = m.entries.flatMap((e) => (e.type === "file" ? [e.hash] : []));
  for (const gzip of [false, true]) {
    let n = 0;
    for await (const _ of packBlobs(src, m, hashes, { gzip })) if (++n === 2) break;
    expect(n).toBeGreaterThan(0); // gzip may fit everything in one chunk
  }
});

it("carries changes back gzip-compressed when both sides say so", async () => {
  const src = tempDir();
  writeTree(src, { "a.txt": "a" });
  const cache = new BlobCache(tempDir());
  const { work, manifest } = await send(src, cache, true);
  fs.writeFileSync(path.join(work, "b.txt"), "b".repeat(10_000));
  const changes = await diffWorkspace(work, manifest);
  const archive = await collect(packChanges(work, changes, { gzip: true }));
  expect(archive.length).toBeLessThan(2_000);
  await applyChanges(src, chunks(archive), changes.deleted, { gzip: true, base: manifest });
  expect(fs.readFileSync(path.join(src, "b.txt"), "utf8")).toBe("b".repeat(10_000));
});

it("diff leaves out links the task pointed outside and fifos, and says so", async () => {
  const src = tempDir();
  writeTree(src, { "a.txt": "a" });
  const cache = new BlobCache(tempDir());
  const { work, manifest } = await send(src, cache);
  fs.mkdirSync(path.join(work, "venv/bin"), { recursive: true });
  fs.symlinkSync("/usr/bin/python3", path.join(work, "venv/bin/python"));
  execFileSync("mkfifo", [path.join(work, "pipe")]);
  const changes = await diffWorkspace(work, manifest);
  expect(changes.changed.map((e) => e.path)).toEqual(["venv", "venv/bin"]);
  expect(changes.skipped?.sort()).toEqual(["pipe", "venv/bin/python"]);
  await expect(diffWorkspace(work, manifest, { outsideSymlinks: "error" })).rejects.toThrow(
    /venv\/bin\/python/,
  );
});
