// Hashing is most of a scan that reads many files: an open, a read, a close
// and the hash of each. A scan reads on its own thread and on one helper
// thread per process at once: the helper takes batches from the front of
// the queue, the scan from the back, until they meet. Small scans never
// start the thread.
import { Worker } from "node:worker_threads";

/** One file to hash: its path, the size lstat gave, and whether its bytes are kept. */
export interface HashJob {
  abs: string;
  size: number;
  keep: boolean;
}

/** What hashing a file gave: the hash, the bytes read, and those bytes when kept. */
export interface Hashed {
  hash: string;
  size: number;
  data?: Buffer;
}

interface Reply {
  id: number;
  hashes: string;
  sizes: Float64Array;
  offsets: Float64Array;
  buf?: ArrayBuffer;
  /** Indexes of the files that failed: hashed again by the caller, to fail as it would. */
  failed: number[];
}

// The thread's code, plain CommonJS so it runs from the built package and
// from source alike. Kept files are read into one buffer per batch, sent
// back; a file that grew since lstat is hashed whole and not kept.
const THREAD = `
const { parentPort } = require("node:worker_threads");
const fs = require("node:fs");
const crypto = require("node:crypto");
const CHUNK = 1024 * 1024;
const scratch = Buffer.allocUnsafe(CHUNK);
const R = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW;
function rest(fd, h, total) {
  for (;;) {
    const n = fs.readSync(fd, scratch, 0, CHUNK, null);
    if (n === 0) return total;
    h.update(scratch.subarray(0, n));
    total += n;
  }
}
parentPort.on("message", (m) => {
  const paths = m.paths.split("\\0");
  const n = paths.length;
  let room = 0;
  for (let i = 0; i < n; i++) if (m.keep[i]) room += m.sizes[i] + 1;
  const buf = room > 0 ? Buffer.allocUnsafeSlow(room) : undefined;
  let at = 0;
  const hashes = [];
  const sizes = new Float64Array(n);
  const offsets = new Float64Array(n).fill(-1);
  const failed = [];
  for (let i = 0; i < n; i++) {
    const size = m.sizes[i];
    let fd;
    try {
      fd = fs.openSync(paths[i], R);
      if (m.keep[i] && size < CHUNK) {
        const got = fs.readSync(fd, buf, at, size + 1, null);
        if (got <= size) {
          hashes.push(crypto.hash("sha256", buf.subarray(at, at + got), "hex"));
          sizes[i] = got;
          offsets[i] = at;
          at += got;
        } else {
          const h = crypto.createHash("sha256").update(buf.subarray(at, at + got));
          sizes[i] = rest(fd, h, got);
          hashes.push(h.digest("hex"));
        }
      } else {
        const h = crypto.createHash("sha256");
        sizes[i] = rest(fd, h, 0);
        hashes.push(h.digest("hex"));
      }
    } catch {
      failed.push(i);
      hashes.push("");
    } finally {
      if (fd !== undefined) try { fs.closeSync(fd); } catch {}
    }
  }
  const ab = buf ? buf.buffer : undefined;
  const reply = { id: m.id, hashes: hashes.join(","), sizes, offsets, buf: ab, failed };
  parentPort.postMessage(reply, ab ? [ab, sizes.buffer, offsets.buffer] : [sizes.buffer, offsets.buffer]);
});
parentPort.postMessage({ ready: true });
`;

let worker: Worker | undefined;
/** The thread has started: until then it is given one batch, the rest is hashed here. */
let ready = false;
let nextId = 0;
const waiting = new Map<number, (r: Reply | Error) => void>();

function thread(): Worker {
  if (worker) return worker;
  const w = new Worker(THREAD, { eval: true });
  w.unref();
  ready = false;
  w.on("message", (r: Reply | { ready: true }) => {
    if ("ready" in r) {
      if (worker === w) ready = true;
      // A message received refs the thread again: idle, it must not keep the process alive.
      if (waiting.size === 0) w.unref();
      return;
    }
    const done = waiting.get(r.id);
    waiting.delete(r.id);
    if (waiting.size === 0) w.unref();
    done?.(r);
  });
  const fail = (e: unknown) => {
    if (worker === w) {
      worker = undefined;
      ready = false;
    }
    for (const done of waiting.values())
      done(new Error(`the hashing thread stopped: ${String(e)}`));
    waiting.clear();
  };
  w.on("error", fail);
  w.on("exit", (code) => fail(`exit code ${code}`));
  worker = w;
  return w;
}

/** Files per batch, and bytes per batch, whichever comes first. */
const BATCH_FILES = 64;
const BATCH_BYTES = 2 * 1024 * 1024;
/** SLOTH_WORKSPACE_HASHER=sync: every file is hashed on the scanning thread. */
const SYNC = process.env.SLOTH_WORKSPACE_HASHER === "sync";
/** Batches the helper holds at once. */
const IN_FLIGHT = 16;
/** A scan with fewer files to hash than this does it all on its own thread. */
export const HASHER_MIN_FILES = 512;
/** Files queued when the thread is started, so it is up by the time batches go out. */
const START_AT = HASHER_MIN_FILES / 2;

/**
 * Hashes queued files on the calling thread and the helper thread. `hashHere`
 * hashes one file on the calling thread; `done` takes each result, by the
 * job's index, in any order.
 */
export class ParallelHasher {
  private readonly jobs: HashJob[] = [];
  /** Next job not yet handed out, from the front (helper) and the back (here). */
  private front = 0;
  private outstanding = 0;
  private readonly replies: Promise<void>[] = [];
  private failure: unknown;

  constructor(
    private readonly hashHere: (job: HashJob) => Hashed,
    private readonly done: (index: number, r: Hashed) => void,
  ) {}

  /** Queues a file; returns its index. Full batches go to the helper as the queue grows. */
  add(job: HashJob): number {
    const index = this.jobs.push(job) - 1;
    if (SYNC) return index;
    if (this.jobs.length === START_AT) thread();
    else if (this.jobs.length >= HASHER_MIN_FILES) this.feed(this.jobs.length, false);
    return index;
  }

  /** Hashes what is left, here and on the helper; resolves when every file is done. */
  async finish(): Promise<void> {
    const helped = this.jobs.length >= HASHER_MIN_FILES && !SYNC;
    let back = this.jobs.length;
    while (this.front < back) {
      if (helped) this.feed(back, true);
      // One batch here, from the back, then a turn for the helper's answers.
      const stop = Math.max(this.front, back - BATCH_FILES);
      for (let i = back - 1; i >= stop; i--) this.done(i, this.hashHere(this.jobs[i] as HashJob));
      back = stop;
      if (helped) await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.failure !== undefined) throw this.failure;
    }
    await Promise.all(this.replies);
    if (this.failure !== undefined) throw this.failure;
  }

  /** Keeps batches in flight on the helper, taken from the front up to `limit`. */
  private feed(limit: number, partial: boolean): void {
    // A thread still starting gets one batch: the rest may be done here
    // first. Once this thread hashes too, the helper is kept only two
    // batches ahead, so neither waits long for the other at the end.
    const cap = !ready ? 1 : partial ? 2 : IN_FLIGHT;
    while (this.outstanding < cap && this.front < limit) {
      let end = this.front;
      let bytes = 0;
      while (end < limit && end - this.front < BATCH_FILES && bytes < BATCH_BYTES) {
        bytes += (this.jobs[end] as HashJob).size;
        end++;
      }
      const full = end - this.front >= BATCH_FILES || bytes >= BATCH_BYTES;
      if (!full && !partial) return;
      this.send(this.front, end);
      this.front = end;
    }
  }

  private send(from: number, to: number): void {
    const batch = this.jobs.slice(from, to);
    const id = ++nextId;
    const w = thread();
    w.ref();
    this.outstanding++;
    const sizes = new Float64Array(batch.map((j) => j.size));
    const keep = new Uint8Array(batch.map((j) => (j.keep ? 1 : 0)));
    const reply = new Promise<Reply | Error>((resolve) => waiting.set(id, resolve));
    this.replies.push(
      reply.then((r) => {
        this.outstanding--;
        try {
          if (r instanceof Error) {
            // The thread is gone: these files are hashed here instead.
            for (let k = 0; k < batch.length; k++)
              this.done(from + k, this.hashHere(batch[k] as HashJob));
            return;
          }
          const hashes = r.hashes.split(",");
          const buf = r.buf ? Buffer.from(r.buf) : undefined;
          const failed = new Set(r.failed);
          for (let k = 0; k < batch.length; k++) {
            const job = batch[k] as HashJob;
            // Hashed again here, so it fails (or not) exactly as it would have.
            if (failed.has(k)) {
              this.done(from + k, this.hashHere(job));
              continue;
            }
            const size = r.sizes[k] as number;
            const at = r.offsets[k] as number;
            const result: Hashed = { hash: hashes[k] as string, size };
            if (at >= 0 && buf) result.data = buf.subarray(at, at + size);
            this.done(from + k, result);
          }
        } catch (e) {
          this.failure ??= e;
        }
      }),
    );
    w.postMessage({ id, paths: batch.map((j) => j.abs).join("\0"), sizes, keep }, [
      sizes.buffer,
      keep.buffer,
    ]);
  }
}
