// Creating thousands of files is most of a workspace build: each costs an
// open that allocates an inode, a write, a futimes and a close. Done on the
// thread that parses the archive and checks each blob's hash, it leaves the
// machine's other core idle. A FileWriter hands the file creation of large
// builds to one thread per process, in batches (one message per megabyte
// or so, the bytes moved, not copied, and their buffers sent back for
// reuse), while the caller goes on parsing and hashing.
import fs from "node:fs";
import { Worker } from "node:worker_threads";

/** Where a file's bytes come from: memory (copied into the batch), or a range of another file. */
export type FileSource = { data: Uint8Array } | { file: string; offset: number; size: number };

// A batch travels as one string of paths joined by NUL (which no path holds)
// and six numbers per file in a Float64Array: structured cloning of an array
// per file costs the main thread about half a microsecond per field.
// Numbers per file: mode, mtimeMs or -1, size, offset in the batch or -1,
// index of the source file in \`sources\` or -1, offset in the source file.
const FIELDS = 6;

/** A failure the thread reports: the file it was writing, and whether reading its source failed. */
export interface WriteFailure {
  message: string;
  code?: string | undefined;
  /** The file being created. */
  path: string;
  /** True when reading the source file failed (or it ended early), not creating the file. */
  source?: boolean | undefined;
}

interface Reply {
  id: number;
  buf?: ArrayBuffer;
  error?: WriteFailure;
}

const BATCH_BYTES = 1024 * 1024;
const BATCH_ENTRIES = 512;
/** Past this much in flight, {@link FileWriter.ready} asks the producer to wait. */
const IN_FLIGHT_BYTES = 32 * 1024 * 1024;
/** What a queued copy from a file is counted as, in flight (its paths). */
const COPY_COST = 512;

// The thread's code: plain CommonJS, so it runs from the built package and
// from source alike. It creates each file new (never through a symlink),
// checks through /proc that the file it opened is where it was meant to be
// (a parent swapped for a symlink meanwhile would send it elsewhere), with
// its mode and mtime, and reports the first failure of a batch.
const THREAD = `
const { parentPort } = require("node:worker_threads");
const fs = require("node:fs");
const O = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
const UMASK = process.umask();
const PROC = fs.existsSync("/proc/self/fd");
const sources = new Map();
const scratch = Buffer.allocUnsafe(1024 * 1024);
function writeAll(fd, data) {
  let off = 0;
  while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
}
function source(file) {
  let fd = sources.get(file);
  if (fd === undefined) {
    fd = fs.openSync(file, "r");
    sources.set(file, fd);
  }
  return fd;
}
function closeQuietly(fd) {
  try { fs.closeSync(fd); } catch {}
}
parentPort.on("message", (m) => {
  if (m.done !== undefined) {
    for (const f of m.done) {
      const fd = sources.get(f);
      if (fd !== undefined) closeQuietly(fd);
      sources.delete(f);
    }
    return;
  }
  const buf = m.buf ? Buffer.from(m.buf) : undefined;
  const paths = m.paths.split("\\0");
  const n = m.nums;
  let error;
  for (let i = 0; i < paths.length; i++) {
    const path = paths[i];
    const k = i * ${FIELDS};
    const mode = n[k], mtime = n[k + 1], size = n[k + 2], at = n[k + 3];
    const from = n[k + 4] >= 0 ? m.sources[n[k + 4]] : "", fromAt = n[k + 5];
    let out;
    let reading = false;
    try {
      out = fs.openSync(path, O, mode);
      if (PROC && m.real !== undefined) {
        const where = fs.readlinkSync("/proc/self/fd/" + out);
        if (where !== m.real + path.slice(m.root.length)) {
          closeQuietly(out);
          out = undefined;
          try { fs.unlinkSync(where); } catch {}
          throw Object.assign(new Error("a parent folder was replaced by a link while the workspace was built"), { code: "SLOTH_MOVED" });
        }
      }
      if (at >= 0) {
        if (at + size > buf.length) throw Object.assign(new Error("batch overrun"), { code: "SLOTH_BATCH" });
        writeAll(out, buf.subarray(at, at + size));
      } else {
        reading = true;
        const fd = source(from);
        let done = 0;
        while (done < size) {
          const want = Math.min(scratch.length, size - done);
          const n = fs.readSync(fd, scratch, 0, want, fromAt + done);
          if (n === 0) throw Object.assign(new Error("the cache file ended early"), { code: "SLOTH_SHORT" });
          reading = false;
          writeAll(out, scratch.subarray(0, n));
          reading = true;
          done += n;
        }
        reading = false;
      }
      if ((mode & UMASK) !== 0) fs.fchmodSync(out, mode);
      if (mtime >= 0) fs.futimesSync(out, mtime / 1000, mtime / 1000);
      const fd = out;
      out = undefined;
      fs.closeSync(fd);
    } catch (e) {
      if (out !== undefined) closeQuietly(out);
      error = { message: String(e && e.message), code: e && e.code, path, source: reading };
      break;
    }
  }
  parentPort.postMessage(m.buf ? { id: m.id, error, buf: m.buf } : { id: m.id, error }, m.buf ? [m.buf] : []);
});
`;

/** The thread and the batches it has not answered yet. */
interface Thread {
  worker: Worker;
  waiting: Map<number, (r: Reply) => void>;
}

/** Threads of the process: two, so one's backlog drains while the other waits on the disk. */
const THREADS = Number(process.env.SLOTH_WORKSPACE_WRITERS) || 2;
const threads: (Thread | undefined)[] = [];
let nextId = 0;
let inFlight = 0;
const spare: ArrayBuffer[] = [];

function thread(slot: number): Thread {
  const current = threads[slot];
  if (current) return current;
  const worker = new Worker(THREAD, { eval: true });
  worker.unref();
  const t: Thread = { worker, waiting: new Map() };
  worker.on("message", (r: Reply) => {
    const done = t.waiting.get(r.id);
    t.waiting.delete(r.id);
    if (r.buf && r.buf.byteLength === BATCH_BYTES && spare.length < 4) spare.push(r.buf);
    if (t.waiting.size === 0) worker.unref();
    done?.(r);
  });
  // Only this thread's batches fail with it; a new thread serves the next ones.
  const fail = (e: unknown) => {
    if (threads[slot] === t) threads[slot] = undefined;
    const error = { message: `the file writer thread stopped: ${String(e)}`, path: "" };
    for (const [id, done] of t.waiting) done({ id, error });
    t.waiting.clear();
  };
  worker.on("error", fail);
  worker.on("exit", (code) => fail(`exit code ${code}`));
  threads[slot] = t;
  return t;
}

/**
 * Creates files on the process's file writer thread. Writes are queued in
 * order and fail (at {@link drain}, or at the next write) with the first
 * error, as `toError` makes it from what the thread reported.
 */
export class FileWriter {
  private paths: string[] = [];
  private nums: number[] = [];
  private batchSources: string[] = [];
  private buf: Buffer | undefined;
  private used = 0;
  private cost = 0;
  private failure: Error | undefined;
  private closed = false;
  private readonly sent = new Set<Promise<void>>();
  private readonly sources = new Set<string>();
  private readonly real: string | undefined;

  /**
   * `root`: the folder every file is created in (as given, and resolved
   * through symlinks, to check where each file landed).
   */
  constructor(
    private readonly root: string,
    private readonly toError: (f: WriteFailure) => Error = (f) =>
      Object.assign(new Error(`cannot write ${f.path}: ${f.message}`), {
        code: f.code,
        path: f.path,
      }),
  ) {
    try {
      this.real = fs.realpathSync(root);
    } catch {
      this.real = undefined;
    }
  }

  /**
   * Queues a new file `abs` (which must not exist), under the root, with
   * `mode` and, if given, `mtimeMs`; its bytes are `from.data` whole, or
   * `from.size` bytes of `from.file` at `from.offset`.
   */
  write(abs: string, mode: number, mtimeMs: number | undefined, from: FileSource): void {
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error("the file writer is closed");
    if (!abs.startsWith(this.root.endsWith("/") ? this.root : `${this.root}/`))
      throw new Error(`cannot write ${abs}: not under ${this.root}`);
    if (abs.includes("\0")) throw new Error(`cannot write ${JSON.stringify(abs)}: NUL in a path`);
    if (this.paths.length >= BATCH_ENTRIES) this.flush();
    const mtime = mtimeMs ?? -1;
    if ("data" in from) {
      const n = from.data.length;
      if (this.buf === undefined || this.used + n > this.buf.length) {
        this.flush();
        const reuse = n <= BATCH_BYTES ? spare.pop() : undefined;
        this.buf = reuse ? Buffer.from(reuse) : Buffer.allocUnsafeSlow(Math.max(n, BATCH_BYTES));
      }
      (this.buf as Buffer).set(from.data, this.used);
      this.paths.push(abs);
      this.nums.push(mode, mtime, n, this.used, -1, 0);
      this.used += n;
    } else {
      this.sources.add(from.file);
      let src = this.batchSources.lastIndexOf(from.file);
      if (src < 0) src = this.batchSources.push(from.file) - 1;
      this.paths.push(abs);
      this.nums.push(mode, mtime, from.size, -1, src, from.offset);
      this.cost += COPY_COST;
    }
  }

  /** Sends what is queued to the thread. */
  flush(): void {
    if (this.paths.length === 0) return;
    const id = ++nextId;
    const paths = this.paths.join("\0");
    const nums = new Float64Array(this.nums);
    const sources = this.batchSources;
    const buf = this.buf;
    const bytes = this.used + this.cost;
    this.resetBatch();
    inFlight += bytes;
    const t = thread(id % THREADS);
    t.worker.ref();
    const p = new Promise<void>((resolve) => {
      t.waiting.set(id, (r) => {
        inFlight -= bytes;
        if (r.error && this.failure === undefined) this.failure = this.toError(r.error);
        resolve();
      });
    });
    this.sent.add(p);
    void p.then(() => this.sent.delete(p));
    // The buffer's memory moves to the thread; only the used part is read there.
    const ab = buf ? (buf.buffer as ArrayBuffer) : undefined;
    t.worker.postMessage(
      { id, paths, nums, sources, buf: ab, root: this.root, real: this.real },
      ab ? [ab, nums.buffer] : [nums.buffer],
    );
  }

  /** Resolves when the thread has room for more; undefined when it has now. */
  ready(): Promise<void> | undefined {
    if (this.paths.length > 0 && this.used + this.cost >= BATCH_BYTES) this.flush();
    if (inFlight < IN_FLIGHT_BYTES || this.sent.size === 0) return undefined;
    return Promise.race(this.sent);
  }

  /** Sends what is queued and waits for every file; throws the first failure. */
  async drain(): Promise<void> {
    if (!this.closed) this.flush();
    while (this.sent.size > 0) await Promise.all(this.sent);
    if (this.sources.size > 0) {
      for (const t of threads) t?.worker.postMessage({ done: [...this.sources] });
      this.sources.clear();
    }
    if (this.failure) throw this.failure;
  }

  /** Drops what is queued, refuses further writes, and waits for what was sent. */
  async close(): Promise<void> {
    this.closed = true;
    this.resetBatch();
    await this.drain().catch(() => {});
  }

  /** Starts an empty batch (what was queued is dropped, or already sent). */
  private resetBatch(): void {
    this.paths = [];
    this.nums = [];
    this.batchSources = [];
    this.buf = undefined;
    this.used = 0;
    this.cost = 0;
  }

  /** The first failure, if one came back already. */
  get error(): Error | undefined {
    return this.failure;
  }
}

/** True when the thread is worth starting for a build writing `files` files. */
export function worthAThread(files: number): boolean {
  return files >= 256 && process.env.SLOTH_WORKSPACE_WRITER !== "sync";
}
