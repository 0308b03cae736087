// Workspace transfer for delegated tasks, next to GNU tar through a loopback
// socket in the same run. A generated workspace (10,000 files / 100 MiB;
// 1,000 / 10 MiB quick) goes to an agent process as @sloth/agent does it
// (scan; send the manifest, on which the agent answers which blobs its cache
// lacks and starts building the workspace; pack them, small ones bundled
// several to a tar entry as runners do for agents that offer it; TCP on
// 127.0.0.1; the agent ingests them and the build writes their files as they arrive; the
// task's turn finishes the build), a tenth of it is changed there and comes
// back (diff, pack, TCP into a spool file, apply once complete, as the
// runner does); then the unchanged workspace is synced
// again, into a fresh directory and recycling the last one (the runner names
// the workspace it sent last before scanning, and the agent rebuilds that
// workspace from its manifest meanwhile, as PrepareWorkspace's
// previous_manifest_sha256 has it do; the manifest, unchanged, is named by
// its SHA-256 instead of sent again, as manifest_sha256 has it).
// The agent is a child process speaking IPC for control and TCP for bytes,
// as tar's ends are separate processes. Prints a table; writes
// results/workspace.json.
import { type ChildProcess, fork, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  applyChanges,
  BlobCache,
  diffWorkspace,
  type Folders,
  foldersOf,
  type Manifest,
  packBlobs,
  packChanges,
  readFolders,
  releaseContent,
  sameManifest,
  scanWorkspace,
  type WorkspaceBuild,
} from "@sloth/workspace";
import { median, printTable, QUICK, type Row, round, row, writeResult } from "./lib/report.js";

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

const FILES = QUICK ? 1_000 : 10_000;
const BYTES = (QUICK ? 10 : 100) * 1024 * 1024;
const REPS = QUICK ? 1 : 3;

/** Files of varied sizes (0 to 2× the mean) in 700 folders, incompressible content. */
function generate(dir: string): void {
  const pool = randomBytes(4 * 1024 * 1024);
  const mean = BYTES / FILES;
  // Whole seconds: GNU tar keeps no more, and the changes come back onto
  // tar's copy of the workspace, which must look to them as the runner's own
  // folder does (where mtimes match the manifest, so nothing is read again).
  const old = new Date(Math.floor(Date.now() / 1000 - 60) * 1000);
  let offset = 0;
  for (let i = 0; i < FILES; i++) {
    const sub = path.join(dir, `d${i % 100}`, `e${i % 7}`);
    if (i < 700) fs.mkdirSync(sub, { recursive: true });
    const size = Math.floor((((i * 7919) % 1000) / 999) * 2 * mean);
    offset = (offset + 4099) % (pool.length - size - 16);
    const buf = Buffer.from(pool.subarray(offset, offset + size));
    if (size >= 8) buf.writeUInt32LE(i, 0);
    const file = path.join(sub, `f${i}.dat`);
    fs.writeFileSync(file, buf, { mode: i % 10 === 0 ? 0o755 : 0o644 });
    // Old enough that size+mtime are trusted by the next scan.
    fs.utimesSync(file, old, old);
  }
}

// ---- The agent process -------------------------------------------------

type Request =
  | {
      op: "prepare";
      cache: string;
      /** The manifest's JSON, or (unchanged since the last send) the SHA-256 naming it. */
      manifest?: string;
      sha?: string;
      target: string;
      recycle?: string;
    }
  | { op: "upload"; cache: string; port?: number }
  | { op: "inspect"; cache: string; dir: string; sha?: string; target: string }
  | { op: "task"; work: string; manifest: Manifest }
  | { op: "send-changes"; work: string; port: number };

async function agent(): Promise<void> {
  const caches = new Map<string, BlobCache>();
  const cache = (dir: string) => caches.get(dir) ?? caches.set(dir, new BlobCache(dir)).get(dir)!;
  const manifests = new Map<string, Manifest>();
  // When each workspace was finished: files whose ctime is older are trusted by the diff.
  const builtAt = new Map<string, { at: number; folders: Folders }>();
  // Manifests received, by the SHA-256 of their JSON (the agent keeps the last few).
  const known = new Map<string, Manifest>();
  const builds = new Map<string, { build: WorkspaceBuild; missing: string[]; t: number }>();
  // Workspaces rebuilt ahead from the manifest a runner named as sent last.
  const ahead = new Map<string, { sha: string; target: string; build: WorkspaceBuild }>();
  process.on("message", async (msg: { id: number; req: Request }) => {
    const { id, req } = msg;
    const reply = (data: object) => process.send?.({ id, ...data });
    try {
      if (req.op === "prepare") {
        // What the agent's PrepareWorkspace does: answer, and start building.
        const t = performance.now();
        let manifest: Manifest | undefined;
        if (req.manifest !== undefined) {
          manifest = JSON.parse(req.manifest) as Manifest;
          known.set(sha256(req.manifest), manifest);
        } else manifest = known.get(req.sha as string);
        if (manifest === undefined) {
          reply({ known: false });
          return;
        }
        // RunTask's manifest, kept for the changes after the task.
        manifests.set(req.target, manifest);
        const missing = cache(req.cache).missing(manifest);
        const spec = ahead.get(req.cache);
        ahead.delete(req.cache);
        let build: WorkspaceBuild;
        if (spec && spec.sha === req.sha && spec.target === req.target) build = spec.build;
        else {
          // Not what was rebuilt ahead: that folder is recycled like any kept one.
          let recycle = req.recycle;
          if (spec) {
            await spec.build.finish();
            recycle = spec.build.dir;
          }
          build = cache(req.cache).build(manifest, req.target, {
            ...(recycle ? { recycle } : {}),
          });
        }
        builds.set(req.cache, { build, missing, t });
        reply({ missing, known: true });
      } else if (req.op === "inspect") {
        // PrepareWorkspace naming the workspace sent last: rebuilt ahead from
        // its manifest while the runner scans (checked only, when that is unknown).
        const m = req.sha === undefined ? undefined : known.get(req.sha);
        if (m && req.sha)
          ahead.set(req.cache, {
            sha: req.sha,
            target: req.target,
            build: cache(req.cache).build(m, req.target, { recycle: req.dir }),
          });
        else cache(req.cache).inspect(req.dir);
        reply({});
      } else if (req.op === "upload") {
        // UploadBlobs (none when nothing is missing), then RunTask finishing the build.
        const b = builds.get(req.cache)!;
        builds.delete(req.cache);
        const r =
          req.port === undefined
            ? { blobs: 0, bytes: 0 }
            : await cache(req.cache).ingest(net.connect(req.port, "127.0.0.1"), {
                expect: b.missing,
              });
        const done = await b.build.finish();
        const at = done.checkedAt ?? Date.now();
        builtAt.set(b.build.dir, {
          at,
          folders: readFolders(b.build.dir, manifests.get(b.build.dir)!),
        });
        reply({ ...r, ...done, seconds: (performance.now() - b.t) / 1000 });
      } else if (req.op === "task") reply({ touched: task(req.work, req.manifest) });
      else {
        // As RunTask does after the task: the small changed files' bytes,
        // read to hash them, are packed from memory.
        const built = builtAt.get(req.work);
        const changes = await diffWorkspace(req.work, manifests.get(req.work)!, {
          keepContent: true,
          ...(built ? { reuseUntouchedBefore: built.at, reuseListings: built.folders } : {}),
        });
        reply({ deleted: changes.deleted, changed: changes.changed.length });
        const socket = net.connect(req.port, "127.0.0.1");
        for await (const c of packChanges(req.work, changes)) {
          if (!socket.write(c)) await new Promise((r) => socket.once("drain", r));
        }
        socket.end();
      }
    } catch (e) {
      reply({ error: String((e as Error).stack ?? e) });
    }
  });
}

/** A task on the agent: rewrites every tenth file, adds 1 %, deletes 1 %. */
function task(work: string, manifest: Manifest): string[] {
  const touched: string[] = [];
  let i = 0;
  for (const e of manifest.entries) {
    if (e.type !== "file") continue;
    const abs = path.join(work, e.path);
    if (i % 10 === 3) {
      fs.writeFileSync(abs, randomBytes(e.size));
      touched.push(e.path);
    } else if (i % 100 === 5) fs.rmSync(abs);
    else if (i % 100 === 7) {
      fs.writeFileSync(`${abs}.new`, randomBytes(e.size));
      touched.push(`${e.path}.new`);
    }
    i++;
  }
  return touched;
}

// ---- The runner --------------------------------------------------------

let nextId = 0;
function call<T>(child: ChildProcess, req: Request): Promise<T> {
  const id = ++nextId;
  return new Promise((resolve, reject) => {
    const on = (m: { id: number; error?: string }) => {
      if (m.id !== id) return;
      child.off("message", on);
      if (m.error) reject(new Error(m.error));
      else resolve(m as T);
    };
    child.on("message", on);
    child.send({ id, req });
  });
}

/** A one-connection loopback listener: its port and the accepted socket. */
async function listen(): Promise<{ port: number; socket: Promise<net.Socket> }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const socket = new Promise<net.Socket>((r) =>
    server.once("connection", (s) => {
      server.close();
      r(s);
    }),
  );
  return { port: (server.address() as net.AddressInfo).port, socket };
}

async function send(socket: net.Socket, source: AsyncIterable<Uint8Array>): Promise<void> {
  for await (const c of source) {
    if (!socket.write(c)) await new Promise((r) => socket.once("drain", r));
  }
  socket.end();
}

/** `tar cf - ARGS` → bash /dev/tcp → loopback → a node relay → `tar xf - -C dst`. */
async function tarOverTcp(src: string, args: string, dst: string): Promise<void> {
  fs.mkdirSync(dst, { recursive: true });
  const { port, socket } = await listen();
  const exited = (c: ChildProcess) =>
    new Promise<void>((resolve, reject) =>
      c.once("close", (code) => (code === 0 ? resolve() : reject(new Error(`tar exited ${code}`)))),
    );
  const x = spawn("tar", ["xf", "-", "-C", dst], { stdio: ["pipe", "inherit", "inherit"] });
  void socket.then((s) => s.pipe(x.stdin as NodeJS.WritableStream));
  const c = spawn(
    "bash",
    ["-c", `exec 3<>/dev/tcp/127.0.0.1/${port}; tar cf - -C ${src} ${args} >&3`],
    { stdio: "inherit" },
  );
  await Promise.all([exited(c), exited(x)]);
}

const time = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
  const t = performance.now();
  const r = await f();
  return [r, (performance.now() - t) / 1000];
};

interface Rep {
  sendSeconds: number;
  receiveSeconds: number;
  tarForward: number;
  tarBack: number;
  scan: number;
  forward: number;
  back: number;
  backBytes: number;
  resyncFresh: number;
  resyncRecycled: number;
  resyncSent: number;
}

async function rep(child: ChildProcess, src: string, fresh: (n: string) => string): Promise<Rep> {
  const tarDst = fresh("tar");
  const [, tarForward] = await time(() => tarOverTcp(src, ".", tarDst));

  const cache = fresh("cache");
  const work = fresh("work");
  let manifest!: Manifest;
  let scan = 0;
  let firstScanAt = 0;
  let sendSeconds = 0;
  let receiveSeconds = 0;
  /** The manifest sent last, and the SHA-256 of its JSON. */
  let last: { manifest: Manifest; sha: string } | undefined;
  /**
   * One sync: scan, prepare (ask and start building; an unchanged manifest
   * is named by its SHA-256, not sent), pack, upload, finish.
   */
  const sync = async (target: string, reuse?: Manifest, recycle?: string) => {
    // The runner names the workspace it sent last before it scans.
    if (recycle)
      void call(child, {
        op: "inspect",
        cache,
        dir: recycle,
        target,
        ...(last ? { sha: last.sha } : {}),
      });
    let t: number;
    // As the runner scans: small files go out as read for their hash; a
    // re-sync trusts files and folders untouched since the last scan started.
    const startedAt = Date.now();
    [manifest, t] = await time(() =>
      scanWorkspace(src, {
        keepContent: true,
        ...(reuse
          ? { reuse, reuseUntouchedBefore: firstScanAt, reuseListings: foldersOf(reuse) }
          : {}),
      }),
    );
    if (!reuse) firstScanAt = startedAt;
    if (!reuse) scan = t;
    const common = { op: "prepare", cache, target, ...(recycle ? { recycle } : {}) } as const;
    let answer: { missing?: string[]; known: boolean } | undefined;
    if (last && sameManifest(manifest, last.manifest))
      answer = await call(child, { ...common, sha: last.sha });
    if (!answer?.known) {
      const json = JSON.stringify(manifest);
      last = { manifest, sha: sha256(json) };
      answer = await call(child, { ...common, manifest: json });
    }
    const missing = answer.missing ?? [];
    // Nothing missing: no upload at all, as the runner skips UploadBlobs then.
    if (missing.length === 0) {
      releaseContent(manifest);
      return (await call<{ bytes: number }>(child, { op: "upload", cache })).bytes;
    }
    const { port, socket } = await listen();
    const t0 = performance.now();
    const done = call<{ bytes: number; seconds: number }>(child, { op: "upload", cache, port });
    await send(await socket, packBlobs(src, manifest, missing, { bundle: true }));
    const sent = (performance.now() - t0) / 1000;
    const r = await done;
    if (!reuse) {
      sendSeconds = sent;
      receiveSeconds = r.seconds;
    }
    return r.bytes;
  };
  const [, forward] = await time(() => sync(work));
  const base = manifest;
  const fresh1 = fresh("resync");
  const [resyncSent, resyncFresh] = await time(() => sync(fresh1, base));
  const [, resyncRecycled] = await time(() => sync(fresh("resync"), base, fresh1));

  const { touched } = await call<{ touched: string[] }>(child, {
    op: "task",
    work,
    manifest: base,
  });
  const list = fresh("list");
  fs.writeFileSync(list, touched.join("\n"));
  // Into a folder of its own: ours then applies onto tar's untouched copy.
  const [, tarBack] = await time(() => tarOverTcp(work, `-T ${list}`, fresh("tarback")));
  // Back onto the runner's copy made by tar, so the source stays as generated.
  const [, back] = await time(async () => {
    const { port, socket } = await listen();
    const meta = await call<{ deleted: string[] }>(child, {
      op: "send-changes",
      work,
      port,
    });
    // As the runner does: spooled to an unlinked temporary file as the
    // changes arrive, applied once they are complete.
    const spool = fresh("spool");
    const fd = fs.openSync(spool, "wx+", 0o600);
    fs.rmSync(spool);
    try {
      let at = 0;
      for await (const c of await socket) at += fs.writeSync(fd, c, 0, c.length, at);
      const stream = fs.createReadStream("", {
        fd,
        start: 0,
        autoClose: false,
        highWaterMark: 1024 * 1024,
      });
      await applyChanges(tarDst, stream, meta.deleted, { base });
    } finally {
      fs.closeSync(fd);
    }
  });
  const backBytes = touched.reduce((n, p) => n + fs.statSync(path.join(work, p)).size, 0);
  return {
    sendSeconds,
    receiveSeconds,
    tarForward,
    tarBack,
    scan,
    forward,
    back,
    backBytes,
    resyncFresh,
    resyncRecycled,
    resyncSent,
  };
}

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-bench-workspace-"));
  let seq = 0;
  const fresh = (name: string) => path.join(tmp, `${name}-${++seq}`);
  const child = fork(fileURLToPath(import.meta.url), ["--agent"], {
    execArgv: ["--import", "tsx", "--conditions=source"],
  });
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      child.kill();
      fs.rmSync(tmp, { recursive: true, force: true });
      process.exit(130);
    });
  }
  const reps: Rep[] = [];
  try {
    const src = fresh("src");
    generate(src);
    for (let i = 0; i < REPS; i++) {
      // Each repetition starts from the same state: what the last one wrote is gone.
      const dir = fresh("rep");
      fs.mkdirSync(dir);
      let n = 0;
      reps.push(await rep(child, src, (name) => path.join(dir, `${name}-${++n}`)));
      fs.rmSync(dir, { recursive: true, force: true });
      // Its deletion (and the disk's discards) finish here, not in the next one's timings.
      spawnSync("sync");
    }
  } finally {
    child.kill();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  report(reps);
}

function report(reps: Rep[]): void {
  const m = (k: keyof Rep) => median(reps.map((r) => r[k]));
  const mib = BYTES / 1024 / 1024;
  const s = (x: number) => `${round(x, 3)} s`;
  const ours = m("forward") + m("back");
  const tars = m("tarForward") + m("tarBack");
  const rows: Row[] = [
    row({
      measure: `to the agent: ${FILES} files / ${mib} MiB, empty cache`,
      value: `${s(m("forward"))} (${round(mib / m("forward"), 1)} MiB/s)`,
      reference: `tar c, TCP, tar x: ${s(m("tarForward"))}`,
      ratio: m("tarForward") / m("forward"),
      note: `the runner's scan (hashing every file) ${s(m("scan"))}, packing and sending ${s(m("sendSeconds"))}, the agent's work from the manifest to a finished workspace ${s(m("receiveSeconds"))}`,
    }),
    row({
      measure: `back: ${round(m("backBytes") / 1024 / 1024, 1)} MiB changed or added, 1 % deleted`,
      value: s(m("back")),
      reference: `tar of the changed files: ${s(m("tarBack"))}`,
      ratio: m("tarBack") / m("back"),
    }),
    row({
      measure: "round trip, speed relative to tar",
      value: s(ours),
      reference: s(tars),
      ratio: tars / ours,
      goal: { kind: "min", limit: 0.5, text: "≥ 0.5×" },
    }),
    row({
      measure: "re-sync unchanged into a fresh directory",
      value: `${s(m("resyncFresh"))}, ${m("resyncSent")} bytes of blobs sent`,
      reference: `first sync ${s(m("forward"))}`,
      ratio: m("resyncFresh") / m("forward"),
      note: "every file is created again from the cache: bound by file creation",
    }),
    row({
      measure: "re-sync unchanged, recycling the last workspace directory",
      value: s(m("resyncRecycled")),
      reference: `first sync ${s(m("forward"))}`,
      ratio: m("resyncRecycled") / m("forward"),
      goal: { kind: "max", limit: 0.1, text: "≤ 10 %" },
    }),
  ];
  printTable(`Workspace transfer (median of ${REPS})`, rows);
  writeResult("workspace", rows, { files: FILES, bytes: BYTES, reps });
}

if (process.argv[2] === "--agent") await agent();
else await main();
