// Helpers for the tests: temp dirs, byte streams, hand-made tar archives and
// a description of a directory tree to compare two trees with.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import tar from "tar-stream";

const made: string[] = [];

/** A fresh temp directory, removed by {@link cleanupTemp}. */
export function tempDir(prefix = "sloth-ws-"): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

/** Removes every temp dir made so far (making them writable first). */
export function cleanupTemp(): void {
  for (const d of made.splice(0)) {
    fs.rmSync(d, { recursive: true, force: true, maxRetries: 2 });
  }
}

/** Collects a byte stream. */
export async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}

/** Replays bytes as a stream of chunks of `size`. */
export async function* chunks(buf: Uint8Array, size = 7919): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

/** One entry of a hand-made archive. */
export interface Crafted {
  name: string;
  type?: "file" | "directory" | "symlink" | "link" | "fifo" | "character-device" | "block-device";
  content?: string | Buffer;
  linkname?: string;
  mode?: number;
  size?: number;
  /** pax records of the entry (a bundle's blob list, say). */
  pax?: Record<string, string>;
}

/** Builds a tar archive entry by entry with tar-stream, whatever the entries say. */
export async function craftTar(entries: Crafted[]): Promise<Buffer> {
  const pack = tar.pack();
  const out = collect(pack as AsyncIterable<Uint8Array>);
  for (const e of entries) {
    const type = e.type ?? "file";
    if (type === "file") {
      const body =
        typeof e.content === "string" ? Buffer.from(e.content) : (e.content ?? Buffer.alloc(0));
      pack.entry(
        { name: e.name, type, mode: e.mode ?? 0o644, size: body.length, pax: e.pax },
        body,
      );
    } else {
      pack.entry({
        name: e.name,
        type,
        mode: e.mode ?? 0o644,
        linkname: e.linkname,
        size: 0,
        pax: e.pax,
      });
    }
  }
  pack.finalize();
  return out;
}

/** Writes files: a string value is a file, `null` a directory, `{ link }` a symlink. */
export function writeTree(
  root: string,
  spec: Record<
    string,
    string | Buffer | null | { link: string } | { mode: number; content: string }
  >,
): void {
  for (const [rel, v] of Object.entries(spec)) {
    const abs = path.join(root, rel);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    if (v === null) fs.mkdirSync(abs, { recursive: true });
    else if (typeof v === "string" || Buffer.isBuffer(v)) fs.writeFileSync(abs, v);
    else if ("link" in v) fs.symlinkSync(v.link, abs);
    else {
      fs.writeFileSync(abs, v.content);
      fs.chmodSync(abs, v.mode);
    }
  }
}

/** Every entry under `root`: type, mode, content or link target; comparable with toEqual. */
export function describeTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = path.join(root, r);
      const st = fs.lstatSync(abs);
      const mode = (st.mode & 0o777).toString(8);
      if (st.isSymbolicLink()) out[r] = `link -> ${fs.readlinkSync(abs)}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${mode}`;
        walk(r);
      } else {
        const data = fs.readFileSync(abs);
        out[r] =
          `file ${mode} ${data.length > 64 ? `${data.length} bytes` : data.toString("utf8")}`;
      }
    }
  };
  walk("");
  return out;
}
