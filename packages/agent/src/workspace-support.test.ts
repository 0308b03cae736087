import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  applyChanges,
  BlobCache,
  isWorkspaceError,
  packBlobs,
  scanWorkspace,
} from "@sloth/workspace";
import { afterEach, describe, expect, it } from "vitest";
import { createWorkspaceSupport } from "./workspace-support.js";

const made: string[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function waitFor(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(ok()).toBe(true);
}

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-agent-ws-"));
  made.push(d);
  return d;
}

function write(root: string, files: Record<string, string>): void {
  const old = new Date(Date.now() - 60_000);
  for (const [rel, content] of Object.entries(files)) {
    const abs = path.join(root, rel);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, content);
    fs.utimesSync(abs, old, old);
  }
}

/** Every entry under `root` with its type, mode and content. */
function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(root, r));
      const mode = (st.mode & 0o777).toString(8);
      if (st.isSymbolicLink()) out[r] = `link ${fs.readlinkSync(path.join(root, r))}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${mode}`;
        walk(r);
      } else out[r] = `file ${mode} ${fs.readFileSync(path.join(root, r), "utf8")}`;
    }
  };
  walk("");
  return out;
}

async function setup(keepWorkspaces?: number) {
  const root = tempDir();
  const ws = await createWorkspaceSupport({
    cacheDir: path.join(root, "cache"),
    workDir: path.join(root, "workspaces"),
    keepWorkspaces,
  });
  closers.push(ws.close);
  /** What a runner does before RunTask: the manifest, then the blobs the agent lacks. */
  const ship = async (src: string) => {
    const manifest = await scanWorkspace(src);
    const json = JSON.stringify(manifest);
    const missing = await ws.support.missing(json);
    if (missing.length > 0) await ws.support.ingest(packBlobs(src, manifest, missing), false);
    return json;
  };
  return { root, ws, ship, workDir: path.join(root, "workspaces") };
}

describe("agent workspaces", () => {
  it("builds the prepared workspace while the upload arrives, then hands it to the task", async () => {
    const { ws, ship } = await setup();
    const src = tempDir();
    write(src, { "a.txt": "a", "d/b.txt": "b", "d/e/c.txt": "c" });
    const json = await ship(src);
    const lent = await ws.task.workspace?.(json);
    expect(lent && tree(lent.dir)).toEqual(tree(src));
  });

  it("recycles the last workspace into exactly the manifest: changes undone, extra files gone", async () => {
    const { ws, ship, workDir } = await setup();
    const src = tempDir();
    write(src, { "a.txt": "a", "d/b.txt": "b", "d/e/c.txt": "c", "gone/x.txt": "x" });
    const json = await ship(src);
    const first = await ws.task.workspace?.(json);
    if (!first) throw new Error("no workspace");
    // The task edits, adds, deletes, and leaves a build folder behind.
    fs.writeFileSync(path.join(first.dir, "a.txt"), "edited");
    fs.writeFileSync(path.join(first.dir, "d/extra.txt"), "left over");
    fs.rmSync(path.join(first.dir, "d/e/c.txt"));
    fs.mkdirSync(path.join(first.dir, "node_modules/p"), { recursive: true });
    fs.writeFileSync(path.join(first.dir, "node_modules/p/i.js"), "x");
    fs.symlinkSync("/etc", path.join(first.dir, "d/escape"));
    first.release();
    // Same source again, one file changed and one removed on the runner.
    write(src, { "d/b.txt": "b2" });
    fs.rmSync(path.join(src, "gone"), { recursive: true });
    const second = await ws.task.workspace?.(await ship(src));
    if (!second) throw new Error("no workspace");
    expect(fs.existsSync(first.dir)).toBe(false);
    expect(tree(second.dir)).toEqual(tree(src));
    // One folder in use, none left behind.
    expect(fs.readdirSync(workDir)).toEqual([path.basename(second.dir)]);
  });

  it("builds an unchanged workspace from a manifest named by its SHA-256, and says when it does not know one", async () => {
    const { ws, ship } = await setup();
    const src = tempDir();
    write(src, { "a.txt": "a", "d/b.txt": "b" });
    const json = await ship(src);
    const sha = createHash("sha256").update(json).digest("hex");
    const first = await ws.task.workspace?.(json);
    if (!first) throw new Error("no workspace");
    fs.writeFileSync(path.join(first.dir, "a.txt"), "edited by the task");
    first.release();
    // Named, not sent: nothing is missing, and the task gets exactly the manifest again.
    expect(await ws.support.missingKnown(sha)).toEqual([]);
    const second = await ws.task.workspace?.(json);
    if (!second) throw new Error("no workspace");
    expect(tree(second.dir)).toEqual(tree(src));
    second.release();
    expect(await ws.support.missingKnown("0".repeat(64))).toBeUndefined();
    expect(await ws.support.missingKnown("not a hash")).toBeUndefined();
  });

  it("rebuilds the workspace a runner names as sent last while it scans: ready when named again, recycled when it changed", async () => {
    const { ws, ship, workDir } = await setup();
    const src = tempDir();
    const files: Record<string, string> = {};
    for (let i = 0; i < 50; i++) files[`d${i % 5}/f${i}.txt`] = `file ${i}`;
    write(src, files);
    const json = await ship(src);
    const sha = createHash("sha256").update(json).digest("hex");
    const first = await ws.task.workspace?.(json);
    if (!first) throw new Error("no workspace");
    // The task edits, adds and deletes.
    fs.writeFileSync(path.join(first.dir, "d1/f1.txt"), "edited by the task");
    fs.writeFileSync(path.join(first.dir, "d2/extra.txt"), "left over");
    fs.rmSync(path.join(first.dir, "d3/f3.txt"));
    first.release();
    // Unchanged: named as sent last (warm), then named again.
    ws.support.warm(sha);
    // Rebuilt ahead, before the runner names it again: the kept folder moved into a new one.
    await waitFor(() => !fs.existsSync(first.dir));
    expect(fs.readdirSync(workDir)).toHaveLength(1);
    expect(await ws.support.missingKnown(sha)).toEqual([]);
    const second = await ws.task.workspace?.(json);
    if (!second) throw new Error("no workspace");
    expect(tree(second.dir)).toEqual(tree(src));
    second.release();
    // Changed on the runner: the workspace rebuilt ahead is recycled into the new manifest.
    ws.support.warm(sha);
    write(src, { "d1/f1.txt": "changed on the runner", "d4/new.txt": "new" });
    fs.rmSync(path.join(src, "d0/f0.txt"));
    const third = await ws.task.workspace?.(await ship(src));
    if (!third) throw new Error("no workspace");
    expect(tree(third.dir)).toEqual(tree(src));
    third.release();
    // Named as sent last, then never asked for: parked again at close, nothing left half-built.
    ws.support.warm(
      createHash("sha256")
        .update(JSON.stringify(await scanWorkspace(src)))
        .digest("hex"),
    );
    expect(fs.readdirSync(workDir).length).toBeLessThanOrEqual(2);
  });

  describe("rebuilding ahead", () => {
    const sha = (s: string) => createHash("sha256").update(s).digest("hex");
    const ino = (p: string) => fs.statSync(p).ino;
    const many = (prefix: string, n = 40) => {
      const f: Record<string, string> = {};
      for (let i = 0; i < n; i++) f[`d${i % 4}/${prefix}${i}.txt`] = `${prefix} content ${i}`;
      return f;
    };

    it("does not when a blob was pruned meanwhile: the kept folder is recycled, not thrown away", async () => {
      const { root, ws, ship } = await setup();
      const src = tempDir();
      write(src, many("a"));
      // The blob of d1/a1.txt goes into a pack of its own.
      const m0 = await scanWorkspace(src);
      const h1 = (m0.entries.find((e) => e.path === "d1/a1.txt") as { hash: string }).hash;
      await ws.support.ingest(packBlobs(src, m0, [h1]), false);
      const json = await ship(src);
      const first = await ws.task.workspace?.(json);
      if (!first) throw new Error("no workspace");
      const kept = ino(path.join(first.dir, "d0/a4.txt"));
      fs.writeFileSync(path.join(first.dir, "d1/a1.txt"), "edited by the task");
      first.release();
      // The cache bound drops the pack holding a1's blob.
      const others = new Set(
        m0.entries.flatMap((e) => (e.type === "file" && e.hash !== h1 ? [e.hash] : [])),
      );
      expect(new BlobCache(path.join(root, "cache")).prune(0, others).removed).toBe(1);
      ws.support.warm(sha(json));
      write(src, { "d2/a2.txt": "changed on the runner" });
      const second = await ws.task.workspace?.(await ship(src));
      if (!second) throw new Error("no workspace");
      expect(tree(second.dir)).toEqual(tree(src));
      expect(ino(path.join(second.dir, "d0/a4.txt"))).toBe(kept);
    });

    it("lets a runner naming its manifest while another's changed manifest parks the rebuild still recycle it", async () => {
      const { ws, ship } = await setup();
      const a = tempDir();
      const b = tempDir();
      write(a, many("a"));
      write(b, many("b"));
      const ja = await ship(a);
      const wa = await ws.task.workspace?.(ja);
      if (!wa) throw new Error("no workspace");
      const kept = ino(path.join(wa.dir, "d0/a4.txt"));
      wa.release();
      const wb = await ws.task.workspace?.(await ship(b));
      wb?.release();
      ws.support.warm(sha(ja)); // runner A: unchanged, scanning
      write(b, { "d0/b0.txt": "changed" });
      const pb = ws.support.missing(JSON.stringify(await scanWorkspace(b))); // runner B parks A's rebuild
      expect(await ws.support.missingKnown(sha(ja))).toEqual([]); // runner A names it meanwhile
      await pb;
      const wa2 = await ws.task.workspace?.(ja);
      if (!wa2) throw new Error("no workspace");
      expect(tree(wa2.dir)).toEqual(tree(a));
      expect(ino(path.join(wa2.dir, "d0/a4.txt"))).toBe(kept);
    });

    it("never trusts a folder a task had: a write through a hard link it left is undone", async () => {
      const { ws, ship } = await setup();
      const a = tempDir();
      const b = tempDir();
      const outside = tempDir();
      write(a, many("a"));
      write(b, many("b"));
      const ja = await ship(a);
      const wa = await ws.task.workspace?.(ja);
      if (!wa) throw new Error("no workspace");
      fs.linkSync(path.join(wa.dir, "d1/a1.txt"), path.join(outside, "link"));
      wa.release();
      ws.support.warm(sha(ja));
      await new Promise((r) => setTimeout(r, 100));
      // Another runner's changed manifest parks the rebuild; then the link is written.
      await ws.support.missing(JSON.stringify(await scanWorkspace(b)));
      await new Promise((r) => setTimeout(r, 50));
      fs.writeFileSync(path.join(outside, "link"), "written after the rebuild");
      write(a, { "d2/a2.txt": "changed" });
      const wa2 = await ws.task.workspace?.(await ship(a));
      if (!wa2) throw new Error("no workspace");
      expect(tree(wa2.dir)).toEqual(tree(a));
    });
  });

  it("forgets all but the last few manifests", async () => {
    const { ws, ship } = await setup();
    const shas: string[] = [];
    for (let i = 0; i < 6; i++) {
      const src = tempDir();
      write(src, { [`f${i}.txt`]: `content ${i}` });
      const json = await ship(src);
      shas.push(createHash("sha256").update(json).digest("hex"));
      const lent = await ws.task.workspace?.(json);
      lent?.release();
    }
    expect(await ws.support.missingKnown(shas[0] as string)).toBeUndefined();
    expect(await ws.support.missingKnown(shas[5] as string)).toEqual([]);
  });

  it("checks the kept workspace a runner names before its manifest comes, to the same exact result", async () => {
    const { ws, ship } = await setup();
    const src = tempDir();
    const files: Record<string, string> = {};
    for (let i = 0; i < 20; i++) files[`d${i % 3}/f${i}.txt`] = `file ${i}`;
    write(src, files);
    const json = await ship(src);
    const first = await ws.task.workspace?.(json);
    if (!first) throw new Error("no workspace");
    fs.writeFileSync(path.join(first.dir, "d1/f4.txt"), "edited by the task");
    fs.writeFileSync(path.join(first.dir, "d2/extra.txt"), "left over");
    first.release();
    // The runner names the manifest it sent last, then scans: the agent checks meanwhile.
    ws.support.warm(createHash("sha256").update(json).digest("hex"));
    // A name it does not know, or garbage, changes nothing.
    ws.support.warm("0".repeat(64));
    ws.support.warm("not a hash");
    write(src, { "d0/f3.txt": "changed on the runner" });
    const second = await ws.task.workspace?.(await ship(src));
    if (!second) throw new Error("no workspace");
    expect(fs.existsSync(first.dir)).toBe(false);
    expect(tree(second.dir)).toEqual(tree(src));
    second.release();
  });

  it("brings back a rewrite that kept the file's size and mtime (cp -p, tar -x, touch -r)", async () => {
    const { ws, ship } = await setup();
    const src = tempDir();
    write(src, { "a.txt": "aaaa", "b.txt": "bbbb" });
    const json = await ship(src);
    const lent = await ws.task.workspace?.(json);
    if (!lent || !ws.task.changes) throw new Error("no workspace");
    const file = path.join(lent.dir, "a.txt");
    const st = fs.statSync(file);
    fs.writeFileSync(file, "AAAA");
    fs.utimesSync(file, st.atime, st.mtime);
    const { chunks, deleted } = await ws.task.changes(lent.dir, json);
    await applyChanges(src, chunks, deleted, { base: JSON.parse(json) });
    expect(fs.readFileSync(path.join(src, "a.txt"), "utf8")).toBe("AAAA");
    expect(tree(src)).toEqual(tree(lent.dir));
    lent.release();
  });

  it("brings back a file rewritten (size and mtime kept) after a recycled workspace was checked", async () => {
    const { ws, ship, workDir } = await setup();
    const src = tempDir();
    write(src, { "a.txt": "aaaa", "d/b.txt": "bbbb" });
    const json = await ship(src);
    const first = await ws.task.workspace?.(json);
    if (!first) throw new Error("no workspace");
    first.release();
    // Named as sent last: checked and rebuilt ahead into a new folder.
    ws.support.warm(createHash("sha256").update(json).digest("hex"));
    await waitFor(() => !fs.existsSync(first.dir) && fs.readdirSync(workDir).length === 1);
    await new Promise((r) => setTimeout(r, 50));
    // A process the last task left behind rewrites a file after that check,
    // keeping its size and mtime, well before the next task asks for the folder.
    const ahead = path.join(workDir, fs.readdirSync(workDir)[0] as string);
    const file = path.join(ahead, "d/b.txt");
    const st = fs.statSync(file);
    fs.writeFileSync(file, "BBBB");
    fs.utimesSync(file, st.atime, st.mtime);
    await new Promise((r) => setTimeout(r, 300));
    // The runner names the manifest again (unchanged), then runs the task.
    expect(await ws.support.missingKnown(createHash("sha256").update(json).digest("hex"))).toEqual(
      [],
    );
    const lent = await ws.task.workspace?.(json);
    if (!lent || !ws.task.changes) throw new Error("no workspace");
    expect(lent.dir).toBe(ahead);
    // The task saw it; its changes must carry it back.
    const { chunks, deleted } = await ws.task.changes(lent.dir, json);
    await applyChanges(src, chunks, deleted, { base: JSON.parse(json) });
    expect(fs.readFileSync(path.join(src, "d/b.txt"), "utf8")).toBe("BBBB");
    lent.release();
  });

  it("leaves names that are not valid UTF-8 on the agent, and out of the next task's workspace", async () => {
    const { ws, ship } = await setup();
    const src = tempDir();
    write(src, { "a.txt": "aaaa", "d/b.txt": "bbbb" });
    const json = await ship(src);
    for (let round = 0; round < 2; round++) {
      const lent = await ws.task.workspace?.(json);
      if (!lent || !ws.task.changes) throw new Error("no workspace");
      expect(tree(lent.dir)).toEqual(tree(src));
      // The task creates a file and a folder whose names are not UTF-8, and edits a file.
      const bad = (rel: string, name: string) =>
        Buffer.concat([Buffer.from(`${lent.dir}/${rel}`), Buffer.from(name, "latin1")]);
      fs.writeFileSync(bad("", "bad\xffname.txt"), "x");
      fs.mkdirSync(bad("d/", "dir\xfe"));
      fs.writeFileSync(Buffer.concat([bad("d/", "dir\xfe"), Buffer.from("/inside")]), "y");
      fs.writeFileSync(path.join(lent.dir, "a.txt"), `edited ${round}`);
      const { chunks, deleted, skipped } = await ws.task.changes(lent.dir, json);
      expect(skipped).toEqual(["bad\uFFFDname.txt", "d/dir\uFFFD"]);
      const back = tempDir();
      write(back, { "a.txt": "aaaa", "d/b.txt": "bbbb" });
      await applyChanges(back, chunks, deleted, { base: JSON.parse(json) });
      expect(fs.readFileSync(path.join(back, "a.txt"), "utf8")).toBe(`edited ${round}`);
      lent.release();
    }
  });

  it("brings back folders the task swapped and files it added to an untouched-looking folder", async () => {
    const { ws, ship } = await setup();
    const src = tempDir();
    write(src, { "a/s/one": "1", "a/s/two": "2", "b/s/three": "3", "c/d/four": "4" });
    const json = await ship(src);
    // A second task of the same workspace gets the first one's folder back
    // (renamed), whose folders are old enough for the diff to trust their listings.
    const first = await ws.task.workspace?.(json);
    if (!first) throw new Error("no workspace");
    await new Promise((r) => setTimeout(r, 150));
    first.release();
    const lent = await ws.task.workspace?.(json);
    if (!lent || !ws.task.changes) throw new Error("no workspace");
    // The folders under the swapped ones keep their ctimes: only their identity tells.
    fs.renameSync(path.join(lent.dir, "a"), path.join(lent.dir, "tmp"));
    fs.renameSync(path.join(lent.dir, "b"), path.join(lent.dir, "a"));
    fs.renameSync(path.join(lent.dir, "tmp"), path.join(lent.dir, "b"));
    fs.writeFileSync(path.join(lent.dir, "c/d/five"), "5");
    const { chunks, deleted } = await ws.task.changes(lent.dir, json);
    await applyChanges(src, chunks, deleted, { base: JSON.parse(json) });
    expect(tree(src)).toEqual(tree(lent.dir));
    lent.release();
  });

  it("packs the task's changes against the manifest it was lent", async () => {
    const { ws, ship } = await setup();
    const src = tempDir();
    write(src, { "a.txt": "a", "d/b.txt": "b" });
    const json = await ship(src);
    const lent = await ws.task.workspace?.(json);
    if (!lent || !ws.task.changes) throw new Error("no workspace");
    fs.writeFileSync(path.join(lent.dir, "a.txt"), "edited");
    fs.writeFileSync(path.join(lent.dir, "d/new.txt"), "new");
    fs.rmSync(path.join(lent.dir, "d/b.txt"));
    const { chunks, deleted } = await ws.task.changes(lent.dir, json);
    await applyChanges(src, chunks, deleted, { base: JSON.parse(json) });
    expect(tree(src)).toEqual(tree(lent.dir));
    lent.release();
  });

  it("lends two tasks of one manifest two folders", async () => {
    const { ws, ship } = await setup();
    const src = tempDir();
    write(src, { "a.txt": "a" });
    const json = await ship(src);
    await ws.support.missing(json);
    const [one, two] = await Promise.all([ws.task.workspace?.(json), ws.task.workspace?.(json)]);
    expect(one?.dir).not.toBe(two?.dir);
    expect(one && tree(one.dir)).toEqual(tree(src));
    expect(two && tree(two.dir)).toEqual(tree(src));
  });

  it("keeps at most keepWorkspaces folders, and does not recycle another source's", async () => {
    const { ws, ship, workDir } = await setup(1);
    const a = tempDir();
    const b = tempDir();
    write(a, { "one.txt": "1", "two.txt": "2" });
    write(b, { "other.txt": "o" });
    const wa = await ws.task.workspace?.(await ship(a));
    wa?.release();
    const wb = await ws.task.workspace?.(await ship(b));
    expect(wa && fs.existsSync(wa.dir)).toBe(true);
    expect(wb && tree(wb.dir)).toEqual(tree(b));
    wb?.release();
    await expect.poll(() => fs.readdirSync(workDir).length).toBe(1);
  });

  it("refuses a hostile manifest before writing anything, keeping the last workspace", async () => {
    const { root, ws, ship } = await setup();
    const src = tempDir();
    write(src, { "a.txt": "a" });
    const json = await ship(src);
    const kept = await ws.task.workspace?.(json);
    if (!kept) throw new Error("no workspace");
    kept.release();
    const { entries } = JSON.parse(json) as { entries: { hash?: string }[] };
    const hash = entries.find((e) => e.hash)?.hash;
    // It shares a file with the kept workspace, so that one is picked, then refused.
    const bad = JSON.stringify({
      entries: [
        { path: "a.txt", type: "file", mode: 0o644, size: 1, hash },
        { path: "../escape.txt", type: "file", mode: 0o644, size: 1, hash },
      ],
      totalBytes: 2,
    });
    const e = await ws.support.missing(bad).catch((x: unknown) => x);
    expect(isWorkspaceError(e, "SLOTH_ARCHIVE_UNSAFE"), String(e)).toBe(true);
    const e2 = await ws.task.workspace?.(bad).catch((x: unknown) => x);
    expect(isWorkspaceError(e2, "SLOTH_ARCHIVE_UNSAFE"), String(e2)).toBe(true);
    expect(fs.readdirSync(root).sort()).toEqual(["cache", "workspaces"]);
    expect(fs.readdirSync(path.join(root, "workspaces"))).toEqual([path.basename(kept.dir)]);
    // Still there to be recycled.
    const again = await ws.task.workspace?.(json);
    expect(fs.existsSync(kept.dir)).toBe(false);
    expect(again && tree(again.dir)).toEqual(tree(src));
  });
});
