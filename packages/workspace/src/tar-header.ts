// The tar format as far as workspaces need it: ustar headers (with pax
// extended headers for long names and large sizes) written straight into an
// output buffer, and headers parsed from the 512-byte blocks of an incoming
// archive (ustar, pax and GNU long names), without a stream per entry.

/** The size of a tar block. */
export const BLOCK = 512;

/** An entry's header as parsed; `type` uses tar-stream's names ("file", "directory", ...). */
export interface TarHeader {
  name: string;
  type: string;
  mode: number;
  size: number;
  linkname: string | undefined;
}

/** What a header to write says. */
export interface HeaderSpec {
  name: string;
  type: "file" | "directory" | "symlink";
  mode: number;
  size: number;
  linkname?: string | undefined;
}

const TYPES: Record<number, string> = {
  0: "file",
  48: "file", // '0'
  49: "link",
  50: "symlink",
  51: "character-device",
  52: "block-device",
  53: "directory",
  54: "fifo",
  55: "contiguous-file",
  120: "pax-header", // 'x'
  103: "pax-global-header", // 'g'
  76: "gnu-long-path", // 'L'
  75: "gnu-long-link-path", // 'K'
};

const FLAG: Record<HeaderSpec["type"], number> = { file: 48, directory: 53, symlink: 50 };
const MAX_OCTAL_SIZE = 0o77777777777;

/** Bytes of the header (with any pax header before it) for `spec`: 512 or more, a multiple of 512. */
export function headerLength(spec: HeaderSpec): number {
  const pax = paxRecords(spec);
  return pax === undefined ? BLOCK : 2 * BLOCK + padded(Buffer.byteLength(pax));
}

/** Writes the header of `spec` at `pos` of `out` (which has {@link headerLength} bytes free); returns the new position. */
export function writeHeader(out: Buffer, pos: number, spec: HeaderSpec): number {
  const pax = paxRecords(spec);
  if (pax !== undefined) {
    const body = Buffer.from(pax);
    pos = writeBlock(out, pos, "PaxHeader", 120, 0o644, body.length, "");
    body.copy(out, pos);
    out.fill(0, pos + body.length, pos + padded(body.length));
    pos += padded(body.length);
  }
  const name = Buffer.byteLength(spec.name) <= 100 ? spec.name : "";
  const link = spec.linkname ?? "";
  return writeBlock(
    out,
    pos,
    name,
    FLAG[spec.type],
    spec.mode,
    spec.size <= MAX_OCTAL_SIZE ? spec.size : 0,
    Buffer.byteLength(link) <= 100 ? link : "",
  );
}

/** Rounds up to whole blocks. */
export function padded(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

function paxRecords(spec: HeaderSpec): string | undefined {
  let s = "";
  if (Buffer.byteLength(spec.name) > 100) s += paxRecord("path", spec.name);
  if (spec.linkname !== undefined && Buffer.byteLength(spec.linkname) > 100)
    s += paxRecord("linkpath", spec.linkname);
  if (spec.size > MAX_OCTAL_SIZE) s += paxRecord("size", String(spec.size));
  return s === "" ? undefined : s;
}

/** "<length> key=value\n", where the length counts itself. */
function paxRecord(key: string, value: string): string {
  const rest = Buffer.byteLength(` ${key}=${value}\n`);
  let len = rest + String(rest).length;
  if (String(len).length !== String(rest).length) len = rest + String(len).length;
  return `${len} ${key}=${value}\n`;
}

function writeBlock(
  out: Buffer,
  pos: number,
  name: string,
  flag: number,
  mode: number,
  size: number,
  linkname: string,
): number {
  out.fill(0, pos, pos + BLOCK);
  out.write(name, pos, 100, "utf8");
  octal(out, pos + 100, 8, mode & 0o7777);
  octal(out, pos + 108, 8, 0);
  octal(out, pos + 116, 8, 0);
  octal(out, pos + 124, 12, size);
  // Content is addressed by hash and modes travel in headers; mtimes do not.
  octal(out, pos + 136, 12, 0);
  out[pos + 156] = flag;
  out.write(linkname, pos + 157, 100, "utf8");
  out.write("ustar\u000000", pos + 257, 8, "latin1");
  out.fill(0x20, pos + 148, pos + 156);
  let sum = 0;
  for (let i = pos; i < pos + BLOCK; i++) sum += out[i] as number;
  octal(out, pos + 148, 7, sum);
  out[pos + 155] = 0x20;
  return pos + BLOCK;
}

/** Zero-padded octal in `width - 1` digits and a NUL. */
function octal(out: Buffer, at: number, width: number, n: number): void {
  out.write(n.toString(8).padStart(width - 1, "0"), at, width - 1, "latin1");
  out[at + width - 1] = 0;
}

/** Pax or GNU values carried over to the next header. */
export interface Pending {
  path?: string;
  linkpath?: string;
  size?: number;
}

/**
 * Parses one header block; undefined for an all-zero block (end of archive).
 * Throws a plain Error for a corrupt one.
 */
export function readHeader(b: Uint8Array): TarHeader | undefined {
  let sum = 0;
  let zero = true;
  for (let i = 0; i < BLOCK; i++) {
    const c = b[i] as number;
    if (c !== 0) zero = false;
    sum += i >= 148 && i < 156 ? 0x20 : c;
  }
  if (zero) return undefined;
  if (sum !== parseNumber(b, 148, 8)) throw new Error("invalid tar header checksum");
  const flag = b[156] as number;
  const type = TYPES[flag] ?? `type ${flag}`;
  let name = text(b, 0, 100);
  // POSIX ustar ("ustar\0"): a prefix holds the leading directories of long names.
  if (b[257] === 0x75 && text(b, 257, 6) === "ustar" && b[262] === 0) {
    const prefix = text(b, 345, 155);
    if (prefix !== "") name = `${prefix}/${name}`;
  }
  return {
    name,
    type,
    mode: parseNumber(b, 100, 8),
    size: parseNumber(b, 124, 12),
    linkname: text(b, 157, 100) || undefined,
  };
}

/** Applies the records of a pax extended header to `pending`. */
export function readPax(body: Uint8Array, pending: Pending): void {
  const b = Buffer.from(body.buffer, body.byteOffset, body.length);
  let i = 0;
  while (i < b.length && b[i] !== 0) {
    const space = b.indexOf(0x20, i);
    const len = space === -1 ? Number.NaN : Number(b.toString("latin1", i, space));
    if (!Number.isSafeInteger(len) || len <= space - i + 1 || i + len > b.length)
      throw new Error("invalid pax header");
    const eq = b.indexOf(0x3d, space);
    if (eq === -1 || eq >= i + len || b[i + len - 1] !== 0x0a)
      throw new Error("invalid pax record");
    const key = b.toString("latin1", space + 1, eq);
    const value = b.toString("utf8", eq + 1, i + len - 1);
    if (key === "path") pending.path = value;
    else if (key === "linkpath") pending.linkpath = value;
    else if (key === "size") {
      if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value)))
        throw new Error("invalid pax size");
      pending.size = Number(value);
    }
    i += len;
  }
}

/** A NUL-terminated UTF-8 field. */
export function text(b: Uint8Array, at: number, width: number): string {
  let end = at;
  while (end < at + width && b[end] !== 0) end++;
  return Buffer.from(b.buffer, b.byteOffset + at, end - at).toString("utf8");
}

/** An octal field, or base-256 when its first byte has the high bit set (GNU, large sizes). */
function parseNumber(b: Uint8Array, at: number, width: number): number {
  const first = b[at] as number;
  if (first & 0x80) {
    if (first & 0x40) throw new Error("negative number in tar header");
    let n = first & 0x3f;
    for (let i = at + 1; i < at + width; i++) n = n * 256 + (b[i] as number);
    if (!Number.isSafeInteger(n)) throw new Error("number too large in tar header");
    return n;
  }
  let n = 0;
  let i = at;
  const end = at + width;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  for (; i < end; i++) {
    const c = b[i] as number;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw new Error("invalid number in tar header");
    n = n * 8 + (c - 0x30);
  }
  return n;
}
