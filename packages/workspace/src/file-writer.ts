// Creating thousands of files is most of a workspace build: each costs an
// open that allocates an inode, a write, a futimes and a close. Done on the
// thread that parses the archive and checks each blob's hash, it leaves the
// machine's other core idle. A FileWriter hands the file creation of large
// builds to one thread per process, in batches (one message per megabyte
// or so, the bytes moved, not copied, and their buffers sent back for
// reuse), while the caller goes on parsing and hashing.
import { Worker } from "node:worker_threads";

/** Where a file's bytes come from: memory (copied into the batch), or a range of another file. */
export type FileSource = { data: Uint8Array } | { file: string; offset: number };

// [path, mode, mtimeMs or -1, size, offset in the batch or -1, source file or "", its offset]
type Entry = [string, number, number, number, number, string, number];

interface Reply {
  id: number;
  buf?: ArrayBuffer;
  error?: { message: string; code?: string; path: string };
}

const BATCH_BYTES = 1024 * 1024;
const BATCH_ENTRIES = 512;
/** Past this much in flight, {@link FileWriter.ready} asks the producer to wait. */
const IN_FLIGHT_BYTES = 32 * 1024 * 1024;

// The thread's code: plain CommonJS, so it runs from the built package and
// from source alike. It creates each file new (never through a symlink),
// with its mode and mtime, and reports the first failure of a batch.
const THREAD = `
const { parentPort } = require("node:worker_threads");
const fs = require("node:fs");
const O = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
const UMASK = process.umask();
const sources = new Map();
let scratch = Buffer.allocUnsafe(1024 * 1024);
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
parentPort.on("message", (m) => {
  if (m.done !== undefined) {
    for (const f of m.done) {
      const fd = sources.get(f);
      if (fd !== undefined) fs.closeSync(fd);
      sources.delete(f);
    }
    return;
  }
  const buf = m.buf ? Buffer.from(m.buf) : undefined;
  let error;
  for (const [path, mode, mtime, size, at, from, fromAt] of m.entries) {
    let out;
    try {
      out = fs.openSync(path, O, mode);
      if (at >= 0) writeAll(out, buf.subarray(at, at + size));
      else {
        const fd = source(from);
        let done = 0;
        while (done < size) {
          const want = Math.min(scratch.length, size - done);
          const n = fs.readSync(fd, scratch, 0, want, fromAt + done);
          if (n === 0) throw Object.assign(new Error("the cache file ended early"), { code: "SLOTH_SHORT" });
          writeAll(out, scratch.subarray(0, n));
          done += n;
        }
      }
      if ((mode & UMASK) !== 0) fs.fchmodSync(out, mode);
      if (mtime >= 0) fs.futimesSync(out, mtime / 1000, mtime / 1000);
    } catch (e) {
      error = { message: e.message, code: e.code, path };
      break;
    } finally {
      if (out !== undefined) fs.closeSync(out);
    }
  }
  parentPort.postMessage(m.buf ? { id: m.id, error, buf: m.buf } : { id: m.id, error }, m.buf ? [m.buf] : []);
});
`;

let thread: Worker | undefined;
let nextId = 0;
const waiting = new Map<number, (r: Reply) => void>();
let inFlight = 0;
const spare: ArrayBuffer[] = [];

function worker(): Worker {
  if (thread) return thread;
  const w = new Worker(THREAD, { eval: true });
  w.unref();
  w.on("message", (r: Reply) => {
    const done = waiting.get(r.id);
    waiting.delete(r.id);
    if (r.buf && spare.length < 4) spare.push(r.buf);
    if (waiting.size === 0) w.unref();
    done?.(r);
  });
  const fail = (e: unknown) => {
    if (thread === w) thread = undefined;
    const error = { message: `the file writer thread stopped: ${String(e)}`, path: "" };
    for (const [id, done] of waiting) done({ id, error });
    waiting.clear();
  };
  w.on("error", fail);
  w.on("exit", (code) => fail(`exit code ${code}`));
  thread = w;
  return w;
}

/**
 * Creates files on the process's file writer thread. Writes are queued in
 * order and fail (at {@link drain}) with the first error, naming the file.
 */
export class FileWriter {
  private entries: Entry[] = [];
  private buf: Buffer | undefined;
  private used = 0;
  private failure: Error | undefined;
  private readonly sent = new Set<Promise<void>>();
  private readonly sources = new Set<string>();

  /** Queues a new file `abs` (which must not exist) with `mode` and, if given, `mtimeMs`. */
  write(
    abs: string,
    mode: number,
    mtimeMs: number | undefined,
    size: number,
    from: FileSource,
  ): void {
    if (this.failure) throw this.failure;
    const mtime = mtimeMs ?? -1;
    if ("data" in from) {
      if (from.data.length > BATCH_BYTES) {
        this.flush();
        this.buf = Buffer.allocUnsafeSlow(from.data.length);
      } else if (this.buf === undefined || this.used + from.data.length > this.buf.length) {
        this.flush();
        const reuse = spare.pop();
        this.buf = reuse ? Buffer.from(reuse) : Buffer.allocUnsafeSlow(BATCH_BYTES);
      }
      (this.buf as Buffer).set(from.data, this.used);
      this.entries.push([abs, mode, mtime, size, this.used, "", 0]);
      this.used += from.data.length;
    } else {
      this.sources.add(from.file);
      this.entries.push([abs, mode, mtime, size, -1, from.file, from.offset]);
    }
    if (this.entries.length >= BATCH_ENTRIES) this.flush();
  }

  /** Queues another file with the same bytes as the last one written from memory. */
  writeSame(abs: string, mode: number, mtimeMs: number | undefined): void {
    const last = this.entries.at(-1);
    if (last === undefined || last[4] < 0) throw new Error("writeSame follows a write from memory");
    this.entries.push([abs, mode, mtimeMs ?? -1, last[3], last[4], "", 0]);
  }

  /** Sends what is queued to the thread. */
  flush(): void {
    if (this.entries.length === 0) return;
    const id = ++nextId;
    const entries = this.entries;
    const buf = this.buf;
    const bytes = this.used;
    this.entries = [];
    this.buf = undefined;
    this.used = 0;
    inFlight += bytes;
    const w = worker();
    w.ref();
    const p = new Promise<void>((resolve) => {
      waiting.set(id, (r) => {
        inFlight -= bytes;
        if (r.error && this.failure === undefined) {
          const e = new Error(
            `cannot write ${r.error.path}: ${r.error.message}`,
          ) as NodeJS.ErrnoException;
          if (r.error.code) e.code = r.error.code;
          e.path = r.error.path;
          this.failure = e;
        }
        resolve();
      });
    });
    this.sent.add(p);
    void p.then(() => this.sent.delete(p));
    // The buffer's memory moves to the thread; only the used part is read there.
    const ab = buf ? (buf.buffer as ArrayBuffer) : undefined;
    w.postMessage({ id, entries, buf: ab }, ab ? [ab] : []);
  }

  /** Resolves when the thread has room for more; undefined when it has now. */
  ready(): Promise<void> | undefined {
    if (inFlight < IN_FLIGHT_BYTES || this.sent.size === 0) return undefined;
    return Promise.race(this.sent);
  }

  /** Sends what is queued and waits for every file; throws the first failure. */
  async drain(): Promise<void> {
    this.flush();
    while (this.sent.size > 0) await Promise.all(this.sent);
    if (this.sources.size > 0 && thread) {
      thread.postMessage({ done: [...this.sources] });
      this.sources.clear();
    }
    if (this.failure) throw this.failure;
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

/** For tests: closes the thread (the next writer starts another). */
export async function stopFileWriterThread(): Promise<void> {
  const w = thread;
  thread = undefined;
  if (w) await w.terminate();
}
