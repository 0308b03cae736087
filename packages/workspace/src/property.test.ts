// Property: whatever archive a hostile agent sends (names and link targets
// built from "..", ".", "", "/", links and dirs), applyChanges either
// applies it or refuses it with a WorkspaceError, and afterwards nothing
// outside the target changed and no symlink inside resolves outside it.
import fs from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { afterAll, expect, it } from "vitest";
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
  applyChanges,
  BlobCache,
  isWorkspaceError,
  type ManifestEntry,
  packBlobs,
  scanWorkspace,
} from "./index.js";

afterAll(cleanupTemp);

// Mostly good segments, so many archives are applied, not all refused.
const segment = fc.oneof(
  { arbitrary: fc.constantFrom("a", "b", "l", "x y", "é"), weight: 16 },
  { arbitrary: fc.constantFrom("..", ".", ""), weight: 3 },
);
const relPath = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join("/"));
const anyPath = fc.oneof(
  { arbitrary: relPath, weight: 9 },
  { arbitrary: relPath.map((p) => `/${p}`), weight: 1 },
);
const entry: fc.Arbitrary<Crafted> = fc.oneof(
  {
    arbitrary: fc.record({
      name: anyPath,
      type: fc.constant("file" as const),
      content: fc.constant("data"),
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ name: anyPath, type: fc.constant("directory" as const) }), weight: 2 },
  {
    arbitrary: fc.record({
      name: anyPath,
      type: fc.constant("symlink" as const),
      linkname: anyPath,
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({ name: anyPath, type: fc.constant("link" as const), linkname: anyPath }),
    weight: 1,
  },
);

/** Every path under `root` resolves inside it (links followed as the OS would). */
function staysInside(root: string): void {
  const real = fs.realpathSync(root);
  const walk = (dir: string) => {
    for (const name of fs.readdirSync(dir)) {
      const abs = path.join(dir, name);
      const st = fs.lstatSync(abs);
      if (st.isSymbolicLink()) {
        let resolved: string;
        try {
          resolved = fs.realpathSync(abs);
        } catch {
          continue; // Dangling or a loop: it reaches nothing.
        }
        expect(resolved === real || resolved.startsWith(`${real}/`), `${abs} -> ${resolved}`).toBe(
          true,
        );
      } else if (st.isDirectory()) walk(abs);
    }
  };
  walk(root);
}

it("applyChanges never writes or links outside its target", async () => {
  const base = tempDir();
  const outside = path.join(base, "outside");
  writeTree(outside, { "victim.txt": "precious" });
  const before = describeTree(outside);
  let n = 0;
  let applied = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(entry, { minLength: 1, maxLength: 4 }),
      fc.array(anyPath, { maxLength: 2 }),
      async (entries, deleted) => {
        const target = path.join(base, `t${++n}`, "work");
        writeTree(target, { "a/f": "f", l: { link: "a" }, out: { link: outside } });
        const r = await applyChanges(target, chunks(await craftTar(entries)), deleted).catch(
          (e: unknown) => e,
        );
        if (r instanceof Error) expect(isWorkspaceError(r), String(r.stack)).toBe(true);
        else applied++;
        expect(describeTree(outside)).toEqual(before);
        fs.rmSync(path.join(target, "out"));
        staysInside(target);
      },
    ),
    { numRuns: 300 },
  );
  // The property means little if every archive was refused.
  expect(applied).toBeGreaterThanOrEqual(3);
});

const manifestEntry: fc.Arbitrary<ManifestEntry> = fc.oneof(
  fc.record({ path: anyPath, type: fc.constant("dir" as const), mode: fc.constant(0o755) }),
  fc.record({ path: anyPath, type: fc.constant("symlink" as const), target: anyPath }),
);

it("materialize never writes or links outside its target", async () => {
  const base = tempDir();
  const outside = path.join(base, "outside");
  writeTree(outside, { "victim.txt": "precious" });
  const cache = new BlobCache(path.join(base, "cache"));
  let n = 0;
  let built = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(manifestEntry, { minLength: 1, maxLength: 4 }), async (entries) => {
      const target = path.join(base, `m${++n}`);
      const r = await cache
        .materialize({ entries, totalBytes: 0 }, target)
        .catch((e: unknown) => e);
      if (r instanceof Error) expect(isWorkspaceError(r), String(r.stack)).toBe(true);
      else built++;
      expect(describeTree(outside)).toEqual({ "victim.txt": "file 644 precious" });
      if (fs.existsSync(target)) staysInside(target);
    }),
    { numRuns: 300 },
  );
  expect(built).toBeGreaterThanOrEqual(3);
});

it("a corrupted archive is applied or refused with a WorkspaceError, never followed outside", async () => {
  const base = tempDir();
  const outside = path.join(base, "outside");
  writeTree(outside, { "victim.txt": "precious" });
  const before = describeTree(outside);
  const long = `${"deep/".repeat(30)}file.txt`;
  const good = await craftTar([
    { name: "a/f", content: "data" },
    { name: "l", type: "symlink", linkname: "a" },
    { name: long, content: "x".repeat(700) },
    { name: "d", type: "directory" },
  ]);
  // Where the headers are, so an edit can be given a valid checksum.
  const headers: number[] = [];
  for (let at = 0; at + 512 <= good.length && good[at] !== 0; ) {
    headers.push(at);
    const size = Number.parseInt(good.toString("latin1", at + 124, at + 135), 8);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  const checksum = (b: Buffer, at: number) => {
    b.fill(0x20, at + 148, at + 156);
    let sum = 0;
    for (let i = at; i < at + 512; i++) sum += b[i] as number;
    b.write(`${sum.toString(8).padStart(6, "0")}\0 `, at + 148, 8, "latin1");
  };
  let n = 0;
  await fc.assert(
    fc.asyncProperty(
      // Bytes overwritten at random places (names, sizes, types, pax records),
      // headers re-summed or not, and the archive cut anywhere.
      fc.array(
        fc.record({
          at: fc.oneof(
            fc.nat(good.length - 1),
            fc.constantFrom(...headers).chain((h) => fc.integer({ min: h, max: h + 511 })),
          ),
          byte: fc.oneof(fc.nat(255), fc.constantFrom(0, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x35, 0x37)),
        }),
        { minLength: 1, maxLength: 6 },
      ),
      fc.boolean(),
      fc.nat(good.length),
      fc.integer({ min: 1, max: 1000 }),
      async (edits, fix, cut, piece) => {
        const bytes = Buffer.from(good);
        for (const e of edits) bytes[e.at] = e.byte;
        if (fix) for (const h of headers) checksum(bytes, h);
        const target = path.join(base, `c${++n}`, "work");
        writeTree(target, { out: { link: outside } });
        const r = await applyChanges(target, chunks(bytes.subarray(0, cut), piece), []).catch(
          (e: unknown) => e,
        );
        if (r instanceof Error) expect(isWorkspaceError(r), String(r.stack)).toBe(true);
        expect(describeTree(outside)).toEqual(before);
        fs.rmSync(path.join(target, "out"));
        staysInside(target);
      },
    ),
    // A run that never ends (a parser waiting forever) is a failure too.
    { numRuns: 300, timeout: 10_000 },
  );
});

// What a task may do to its workspace before it is recycled.
const name = fc.constantFrom("a", "b", "a/c", "a/d", "b/e", "n", "n/m");
const mutation = fc.oneof(
  fc.record({
    op: fc.constant("write" as const),
    p: name,
    data: fc.constantFrom("x", "yy", "data"),
  }),
  fc.record({ op: fc.constant("same-size" as const), p: name }),
  fc.record({ op: fc.constant("rm" as const), p: name }),
  fc.record({ op: fc.constant("mkdir" as const), p: name }),
  fc.record({ op: fc.constant("chmod" as const), p: name, mode: fc.constantFrom(0o600, 0o755) }),
  fc.record({ op: fc.constant("link" as const), p: name, to: fc.constantFrom("a", "..", "/") }),
);

function mutate(
  root: string,
  m: { op: string; p: string; data?: string; mode?: number; to?: string },
) {
  const abs = path.join(root, m.p);
  try {
    if (m.op === "write") {
      fs.mkdirSync(path.dirname(abs), { recursive: true });
      fs.writeFileSync(abs, m.data ?? "");
    } else if (m.op === "same-size") {
      // Same size and mtime, other bytes: what size+mtime alone cannot see.
      const st = fs.statSync(abs);
      const data = fs.readFileSync(abs);
      fs.writeFileSync(
        abs,
        data.map((c) => c ^ 1),
      );
      fs.utimesSync(abs, st.atime, st.mtime);
    } else if (m.op === "rm") fs.rmSync(abs, { recursive: true, force: true });
    else if (m.op === "mkdir") fs.mkdirSync(abs, { recursive: true });
    else if (m.op === "chmod") fs.chmodSync(abs, m.mode ?? 0o644);
    else if (m.op === "link") fs.symlinkSync(m.to ?? "a", abs);
  } catch {
    // Not possible in this state (a parent is a file, the path exists): skipped.
  }
}

it("a recycled workspace ends up exactly as its manifest, whatever the task left", async () => {
  const base = tempDir();
  const outside = path.join(base, "outside");
  writeTree(outside, { "victim.txt": "precious" });
  const cache = new BlobCache(path.join(base, "cache"));
  const old = new Date(Date.now() - 60_000);
  let n = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(mutation, { maxLength: 6 }),
      fc.array(mutation, { maxLength: 3 }),
      fc.boolean(),
      async (task, runner, early) => {
        const k = ++n;
        const src = path.join(base, `src${k}`);
        writeTree(src, { "a/c": "one", "a/d": "two", "b/e": "three", f: "four" });
        for (const f of ["a/c", "a/d", "b/e", "f"]) fs.utimesSync(path.join(src, f), old, old);
        const send = async () => {
          const m = await scanWorkspace(src, { outsideSymlinks: "skip" });
          const missing = cache.missing(m);
          await cache.ingest(chunks(await collect(packBlobs(src, m, missing))), {
            expect: missing,
          });
          return m;
        };
        const m1 = await send();
        const w = (i: number) => path.join(base, `w${k}-${i}`);
        await cache.materialize(m1, w(0));
        // Recycled once after a pause, so its files are trusted by ctime, then changed.
        await new Promise((r) => setTimeout(r, 30));
        await cache.materialize(m1, w(1), { recycle: w(0) });
        for (const t of task) mutate(w(1), t);
        // The agent checks the parked workspace while the runner scans (as
        // when a runner names the workspace it sent last).
        if (early) cache.inspect(w(1));
        // The runner's side moved on too (links out of the tree are not sent).
        for (const t of runner) if (t.op !== "link") mutate(src, t);
        const m2 = await send();
        await cache.materialize(m2, w(2), { recycle: w(1) });
        const want = describeTree(src);
        for (const [p, v] of Object.entries(want)) if (v.startsWith("link")) delete want[p];
        for (const e of m2.entries) if (e.type === "symlink") want[e.path] = `link -> ${e.target}`;
        expect(describeTree(w(2))).toEqual(want);
        expect(describeTree(outside)).toEqual({ "victim.txt": "file 644 precious" });
      },
    ),
    { numRuns: 100 },
  );
});
