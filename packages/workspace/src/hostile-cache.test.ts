// A hostile runner: blob archives and manifests crafted by hand, each of
// which the agent's cache must refuse, naming the entry, with nothing
// written outside the cache or the workspace being built.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import {
  type Crafted,
  chunks,
  cleanupTemp,
  collect,
  craftTar,
  describeTree,
  tempDir,
  writeTree,
} from "../test-support/helpers.js";
import {
  BlobCache,
  isWorkspaceError,
  type Manifest,
  type ManifestEntry,
  packBlobs,
  scanWorkspace,
  type WorkspaceErrorCode,
} from "./index.js";

afterAll(cleanupTemp);

const sha = (s: string) => createHash("sha256").update(s).digest("hex");
const HELLO = sha("hello");

let root: string;
let cache: BlobCache;

beforeEach(() => {
  root = tempDir();
  writeTree(root, { "outside/victim.txt": "precious" });
  cache = new BlobCache(path.join(root, "cache"));
});

async function rejects(p: Promise<unknown>, code: WorkspaceErrorCode, entry?: string) {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isWorkspaceError(e, code), String(e)).toBe(true);
  if (entry !== undefined) expect((e as Error).message).toContain(JSON.stringify(entry));
  expect(describeTree(path.join(root, "outside"))).toEqual({ "victim.txt": "file 644 precious" });
  // No pack without its index, no index without its pack.
  const names = fs.readdirSync(path.join(cache.dir, "packs")).sort();
  const packs = names.filter((n) => n.endsWith(".pack")).map((n) => n.slice(0, -5));
  expect(names.filter((n) => n.endsWith(".idx")).map((n) => n.slice(0, -4))).toEqual(packs);
  expect(names.length).toBe(packs.length * 2);
}

const ingest = async (entries: Crafted[], options = {}) =>
  cache.ingest(chunks(await craftTar(entries)), options);

describe("BlobCache.ingest refuses", () => {
  const cases: [string, Crafted[], WorkspaceErrorCode, string][] = [
    [
      "a name that is not a hash",
      [{ name: "../outside/victim.txt", content: "x" }],
      "SLOTH_ARCHIVE_UNSAFE",
      "../outside/victim.txt",
    ],
    [
      "an absolute name",
      [{ name: "/tmp/evil", content: "x" }],
      "SLOTH_ARCHIVE_UNSAFE",
      "/tmp/evil",
    ],
    [
      "a hash with a directory",
      [{ name: `objects/${HELLO}`, content: "hello" }],
      "SLOTH_ARCHIVE_UNSAFE",
      `objects/${HELLO}`,
    ],
    [
      "content that does not match its hash",
      [{ name: HELLO, content: "hellO" }],
      "SLOTH_BLOB_MISMATCH",
      HELLO,
    ],
    [
      "a symlink",
      [{ name: HELLO, type: "symlink", linkname: "/etc/passwd" }],
      "SLOTH_ARCHIVE_UNSAFE",
      HELLO,
    ],
    [
      "a hard link",
      [{ name: HELLO, type: "link", linkname: "/etc/passwd" }],
      "SLOTH_ARCHIVE_UNSAFE",
      HELLO,
    ],
    ["a directory", [{ name: HELLO, type: "directory" }], "SLOTH_ARCHIVE_UNSAFE", HELLO],
    [
      "a character device",
      [{ name: HELLO, type: "character-device" }],
      "SLOTH_ARCHIVE_UNSAFE",
      HELLO,
    ],
    ["a fifo", [{ name: HELLO, type: "fifo" }], "SLOTH_ARCHIVE_UNSAFE", HELLO],
  ];
  for (const [what, entries, code, entry] of cases) {
    it(what, async () => {
      await rejects(ingest(entries), code, entry);
      expect(cache.has(HELLO)).toBe(false);
    });
  }

  it("a blob that was not asked for", async () => {
    await rejects(
      ingest([{ name: HELLO, content: "hello" }], { expect: [sha("other")] }),
      "SLOTH_BLOB_MISMATCH",
      HELLO,
    );
    expect(cache.has(HELLO)).toBe(false);
  });

  it("a blob over the limit, and a total over it", async () => {
    await rejects(
      ingest([{ name: HELLO, content: "hello" }], { limitBytes: 4 }),
      "SLOTH_WORKSPACE_TOO_LARGE",
      HELLO,
    );
    const entries = ["a", "b", "c"].map((c) => ({
      name: sha(c.repeat(10)),
      content: c.repeat(10),
    }));
    await rejects(
      ingest(entries, { limitBytes: 25 }),
      "SLOTH_WORKSPACE_TOO_LARGE",
      entries[2]?.name,
    );
    // The blobs verified before the limit was hit are kept: they are good.
    expect(cache.has(entries[0]?.name ?? "")).toBe(true);
    expect(cache.has(entries[2]?.name ?? "")).toBe(false);
  });

  it("a truncated archive", async () => {
    const tar = await craftTar([{ name: sha("x".repeat(4000)), content: "x".repeat(4000) }]);
    await rejects(cache.ingest(chunks(tar.subarray(0, 2500))), "SLOTH_ARCHIVE_INVALID");
  });

  it("accepts a good blob and reports it once", async () => {
    expect(await ingest([{ name: HELLO, content: "hello" }])).toEqual({ blobs: 1, bytes: 5 });
    expect(await ingest([{ name: HELLO, content: "hello" }])).toEqual({ blobs: 0, bytes: 0 });
  });
});

describe("BlobCache.materialize refuses a manifest with", () => {
  const file = (p: string, hash = HELLO): ManifestEntry => ({
    path: p,
    type: "file",
    mode: 0o644,
    size: 5,
    hash,
  });
  const cases: [string, ManifestEntry[], string][] = [
    ["a path with ..", [file("../outside/victim.txt")], "../outside/victim.txt"],
    ["a path climbing back out", [file("a/../../outside/x")], "a/../../outside/x"],
    ["an absolute path", [file("/tmp/evil")], "/tmp/evil"],
    ["a non-normalised path", [file("./a")], "./a"],
    ["an empty path", [file("")], ""],
    ["a symlink to an absolute path", [{ path: "l", type: "symlink", target: "/etc" }], "l"],
    ["a symlink climbing out", [{ path: "d/l", type: "symlink", target: "../../outside" }], "d/l"],
    [
      "a link chain: a .. after a symlink",
      [
        { path: "dot", type: "symlink", target: "." },
        { path: "up", type: "symlink", target: "dot/.." },
      ],
      "up",
    ],
    ["a file under a symlink", [{ path: "l", type: "symlink", target: "." }, file("l/x")], "l/x"],
    ["a file under a file", [file("f"), file("f/x")], "f/x"],
    ["an entry listed twice", [file("a"), { path: "a", type: "dir", mode: 0o755 }], "a"],
    ["a bad hash", [file("a", "../../outside/victim.txt")], "a"],
  ];
  for (const [what, entries, entry] of cases) {
    it(what, async () => {
      await ingest([{ name: HELLO, content: "hello" }]);
      const target = path.join(root, "work");
      const m: Manifest = { entries, totalBytes: 5 };
      await rejects(cache.materialize(m, target), "SLOTH_ARCHIVE_UNSAFE", entry);
      expect(fs.existsSync(target) ? fs.readdirSync(target) : []).toEqual([]);
    });
  }

  it("setuid, setgid and sticky bits, fresh and recycled", async () => {
    await ingest([{ name: HELLO, content: "hello" }]);
    const target = path.join(root, "work");
    const m: Manifest = {
      entries: [
        { path: "d", type: "dir", mode: 0o3755 },
        { path: "d/suid", type: "file", mode: 0o4755, size: 5, hash: HELLO },
      ],
      totalBytes: 5,
    };
    const modes = () =>
      ["d", "d/suid"].map((p) => (fs.statSync(path.join(target, p)).mode & 0o7777).toString(8));
    await cache.materialize(m, target);
    expect(modes()).toEqual(["755", "755"]);
    fs.chmodSync(path.join(target, "d/suid"), 0o644);
    await cache.materialize(m, target, { recycle: target });
    expect(modes()).toEqual(["755", "755"]);
  });

  it("a recycled directory replaced by a symlink to outside", async () => {
    await ingest([{ name: HELLO, content: "hello" }]);
    const m: Manifest = { entries: [file("a")], totalBytes: 5 };
    const old = path.join(root, "old");
    await cache.materialize(m, old);
    fs.rmSync(old, { recursive: true });
    fs.symlinkSync(path.join(root, "outside"), old);
    const target = path.join(root, "work");
    expect(await cache.materialize(m, target, { recycle: old })).toEqual({ written: 1, kept: 0 });
    expect(fs.lstatSync(target).isDirectory()).toBe(true);
    expect(describeTree(target)).toEqual({ a: "file 644 hello" });
    expect(describeTree(path.join(root, "outside"))).toEqual({ "victim.txt": "file 644 precious" });
  });

  it("a blob the cache lacks", async () => {
    const m: Manifest = { entries: [file("a")], totalBytes: 5 };
    await rejects(cache.materialize(m, path.join(root, "work")), "SLOTH_BLOB_MISSING", "a");
  });

  it("a target that is not empty", async () => {
    await rejects(
      cache.materialize({ entries: [], totalBytes: 0 }, path.join(root, "outside")),
      "SLOTH_INVALID_ARGUMENT",
    );
  });
});

describe("limits and odd workspaces on the sending side", () => {
  it("refuses a workspace over maxBytes", async () => {
    writeTree(root, { "ws/a": "x".repeat(600), "ws/b": "y".repeat(600) });
    await rejects(
      scanWorkspace(path.join(root, "ws"), { maxBytes: 1000 }),
      "SLOTH_WORKSPACE_TOO_LARGE",
    );
    expect((await scanWorkspace(path.join(root, "ws"), { maxBytes: 1200 })).totalBytes).toBe(1200);
  });

  it("names a symlink leaving the workspace, or skips it when asked", async () => {
    writeTree(root, {
      "ws/ok": "x",
      "ws/esc": { link: "../outside/victim.txt" },
      "ws/abs": { link: "/etc" },
    });
    await rejects(scanWorkspace(path.join(root, "ws")), "SLOTH_ARCHIVE_UNSAFE", "abs");
    const m = await scanWorkspace(path.join(root, "ws"), { outsideSymlinks: "skip" });
    expect(m.entries.map((e) => e.path)).toEqual(["ok"]);
  });

  it("stores symlink targets normalised", async () => {
    writeTree(root, { "ws/d/f": "x", "ws/l": { link: "./d//f" } });
    const m = await scanWorkspace(path.join(root, "ws"));
    expect(m.entries.find((e) => e.path === "l")).toEqual({
      path: "l",
      type: "symlink",
      target: "d/f",
    });
  });

  it("fails packing a file that changed size since the scan", async () => {
    writeTree(root, { "ws/a": "before" });
    const m = await scanWorkspace(path.join(root, "ws"));
    fs.writeFileSync(path.join(root, "ws/a"), "after, longer");
    const hash = (m.entries[0] as { hash: string }).hash;
    for (const bundle of [false, true])
      await rejects(
        collect(packBlobs(path.join(root, "ws"), m, [hash], { bundle })),
        "SLOTH_WORKSPACE_CHANGED",
        "a",
      );
    fs.rmSync(path.join(root, "ws/a"));
    await rejects(
      collect(packBlobs(path.join(root, "ws"), m, [hash], { bundle: true })),
      "SLOTH_WORKSPACE_CHANGED",
      "a",
    );
  });

  it("fails packing a hash the manifest does not have", async () => {
    writeTree(root, { "ws/a": "a" });
    const m = await scanWorkspace(path.join(root, "ws"));
    await rejects(collect(packBlobs(path.join(root, "ws"), m, [HELLO])), "SLOTH_BLOB_MISSING");
  });
});

describe("BlobCache.receive refuses", () => {
  const good: Manifest = {
    entries: [{ path: "a.txt", type: "file", mode: 0o644, size: 5, hash: HELLO }],
    totalBytes: 5,
  };
  it("a hostile manifest before reading the stream", async () => {
    const m: Manifest = {
      entries: [{ ...(good.entries[0] as ManifestEntry), path: "../outside/victim.txt" }],
      totalBytes: 5,
    };
    const tar = await craftTar([{ name: HELLO, content: "hello" }]);
    await rejects(
      cache.receive(m, path.join(root, "work"), chunks(tar)),
      "SLOTH_ARCHIVE_UNSAFE",
      "../outside/victim.txt",
    );
    expect(cache.has(HELLO)).toBe(false);
  });

  const cases: [string, Crafted[], WorkspaceErrorCode, string][] = [
    [
      "a blob named like a path",
      [{ name: "../outside/victim.txt", content: "hello" }],
      "SLOTH_ARCHIVE_UNSAFE",
      "../outside/victim.txt",
    ],
    [
      "a symlink instead of a blob",
      [{ name: HELLO, type: "symlink", linkname: "../outside/victim.txt" }],
      "SLOTH_ARCHIVE_UNSAFE",
      HELLO,
    ],
    [
      "content that does not match",
      [{ name: HELLO, content: "HELLO" }],
      "SLOTH_BLOB_MISMATCH",
      HELLO,
    ],
  ];
  for (const [what, entries, code, entry] of cases) {
    it(what, async () => {
      const work = path.join(root, "work");
      await rejects(cache.receive(good, work, chunks(await craftTar(entries))), code, entry);
      expect(fs.existsSync(path.join(work, "a.txt"))).toBe(false);
    });
  }
});

describe("BlobCache.ingest refuses a bundle", () => {
  const A = "a".repeat(10);
  const B = "b".repeat(20);
  // Named by a hash: read as a plain blob (the pax record ignored), each
  // case would fail otherwise than it must.
  const NAME = sha("bundle");
  const bundle = (list: string, content: string, extra: Partial<Crafted> = {}): Crafted => ({
    name: NAME,
    content,
    pax: { "SLOTH.blobs": list },
    ...extra,
  });
  const cases: [string, Crafted, WorkspaceErrorCode, string][] = [
    ["whose sizes add up to less", bundle(`${sha(A)}:10`, A + B), "SLOTH_ARCHIVE_UNSAFE", NAME],
    [
      "whose sizes add up to more",
      bundle(`${sha(A)}:10,${sha(B)}:30`, A + B),
      "SLOTH_ARCHIVE_UNSAFE",
      NAME,
    ],
    ["listing a name that is not a hash", bundle(`../x:10`, A), "SLOTH_ARCHIVE_UNSAFE", NAME],
    [
      "listing a size that is not a number",
      bundle(`${sha(A)}:1e1`, A),
      "SLOTH_ARCHIVE_UNSAFE",
      NAME,
    ],
    ["listing a negative size", bundle(`${sha(A)}:-10`, A), "SLOTH_ARCHIVE_UNSAFE", NAME],
    [
      "listing a size too large to be exact",
      bundle(`${sha(A)}:9999999999999999`, A),
      "SLOTH_ARCHIVE_UNSAFE",
      NAME,
    ],
    ["with an empty list", bundle("", ""), "SLOTH_ARCHIVE_UNSAFE", NAME],
    [
      "that is a symlink",
      {
        name: NAME,
        type: "symlink",
        linkname: "/etc",
        pax: { "SLOTH.blobs": `${sha("")}:0` },
      },
      "SLOTH_ARCHIVE_UNSAFE",
      NAME,
    ],
    [
      "whose second blob does not match its hash",
      bundle(`${sha(A)}:10,${sha(B)}:20`, A + "c".repeat(20)),
      "SLOTH_BLOB_MISMATCH",
      sha(B),
    ],
  ];
  for (const [what, entry, code, name] of cases) {
    it(what, async () => {
      await rejects(ingest([entry]), code, name);
      expect(cache.has(sha(B))).toBe(false);
    });
  }

  it("keeps the blobs verified before a bad one", async () => {
    await rejects(
      ingest([bundle(`${sha(A)}:10,${sha(B)}:20`, A + "c".repeat(20))]),
      "SLOTH_BLOB_MISMATCH",
      sha(B),
    );
    expect(cache.has(sha(A))).toBe(true);
  });

  it("holding a blob that was not asked for", async () => {
    await rejects(
      ingest([bundle(`${sha(A)}:10,${sha(B)}:20`, A + B)], { expect: [sha(A)] }),
      "SLOTH_BLOB_MISMATCH",
      sha(B),
    );
  });

  it("over the byte limit, and with more blobs than maxEntries", async () => {
    await rejects(
      ingest([bundle(`${sha(A)}:10,${sha(B)}:20`, A + B)], { limitBytes: 25 }),
      "SLOTH_WORKSPACE_TOO_LARGE",
      NAME,
    );
    await rejects(
      ingest([bundle(`${sha(A)}:10,${sha(B)}:20,${sha(A)}:10`, A + B + A)], { maxEntries: 2 }),
      "SLOTH_WORKSPACE_TOO_LARGE",
      NAME,
    );
  });

  it("but accepts a good one, empty blobs and repeats included", async () => {
    const list = `${sha(A)}:10,${sha("")}:0,${sha(B)}:20,${sha(A)}:10`;
    expect(await ingest([bundle(list, A + B + A)])).toEqual({ blobs: 3, bytes: 30 });
    for (const h of [sha(A), sha(B), sha("")]) expect(cache.has(h)).toBe(true);
  });
});
