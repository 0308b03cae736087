// The tar entries workspaces use, as this package sees them; the framing
// itself (ustar, pax and GNU long names) is tar-stream's.

/** An entry's header as parsed; `type` uses tar-stream's names ("file", "directory", ...). */
export interface TarHeader {
  name: string;
  type: string;
  mode: number;
  size: number;
  linkname: string | undefined;
  /** The entry's pax records, when it has any. */
  pax?: Record<string, string>;
}

/** What a header to write says. */
export interface HeaderSpec {
  name: string;
  type: "file" | "directory" | "symlink";
  mode: number;
  size: number;
  linkname?: string | undefined;
}
