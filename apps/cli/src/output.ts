import { styleText } from "node:util";

type Style = Parameters<typeof styleText>[0];

/** True when colour may be written to `stream`: a TTY and NO_COLOR unset. */
export function colorEnabled(stream: NodeJS.WriteStream): boolean {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "") return false;
  if (process.env.FORCE_COLOR && process.env.FORCE_COLOR !== "0") return true;
  return Boolean(stream.isTTY);
}

/** Colour helpers for one stream; plain text when colour is off. */
export interface Painter {
  readonly enabled: boolean;
  paint(style: Style, text: string): string;
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
}

/** A painter for `stream`, honouring NO_COLOR and TTY detection. */
export function painter(stream: NodeJS.WriteStream): Painter {
  const enabled = colorEnabled(stream);
  const paint = (style: Style, text: string) =>
    enabled ? styleText(style, text, { validateStream: false }) : text;
  return {
    enabled,
    paint,
    bold: (t) => paint("bold", t),
    dim: (t) => paint("dim", t),
    red: (t) => paint("red", t),
    green: (t) => paint("green", t),
    yellow: (t) => paint("yellow", t),
    cyan: (t) => paint("cyan", t),
  };
}

/**
 * `text` with control characters (other than newline and tab) shown as '?':
 * names, descriptions and messages that come from other users or files must
 * not rewrite the terminal with escape sequences.
 */
export function terminalSafe(text: string): string {
  let out = "";
  for (const c of text) {
    const n = c.charCodeAt(0);
    out += (n < 32 && c !== "\n" && c !== "\t") || (n >= 127 && n < 160) ? "?" : c;
  }
  return out;
}

/** Writes a line to stdout. */
export function println(text = ""): void {
  process.stdout.write(`${text}\n`);
}

/**
 * Writes remote output as it comes, waiting while the reader lags. A reader
 * that went away (EPIPE) is not the link's failure: the CLI's own handler
 * stops the command.
 */
export async function writeOutput(stream: NodeJS.WriteStream, data: Uint8Array): Promise<void> {
  if (stream.destroyed || stream.write(data)) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      stream.off("drain", done).off("error", done).off("close", done);
      resolve();
    };
    stream.on("drain", done).on("error", done).on("close", done);
  });
}

/** Writes a line to stderr. */
export function eprintln(text = ""): void {
  process.stderr.write(`${text}\n`);
}

/** Writes a value as indented JSON to stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Formats a date as `YYYY-MM-DD HH:MM:SS` in local time, as the seed shows. */
export function formatLocalTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Formats milliseconds for people: 850ms, 1.2s, 3m04s. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  return `${m}m${String(s).padStart(2, "0")}s`;
}

/** Renders rows as left-aligned columns separated by two spaces. */
export function table(rows: string[][], widthOf: (s: string) => number = visibleWidth): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, widthOf(cell));
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) =>
          i === row.length - 1 ? cell : cell + " ".repeat((widths[i] ?? 0) - widthOf(cell)),
        )
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** Length of a string without ANSI escapes. */
export function visibleWidth(s: string): number {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping ANSI escapes
  return s.replace(/\u001b\[[0-9;]*m/g, "").length;
}
