import { eprintln, painter } from "./output.js";

/** A pino-shaped logger that prints readable lines to stderr. */
export interface LineLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/** Logs `time level message key=value ...` lines to stderr; debug only when asked. */
export function lineLogger(debug = false): LineLogger {
  const c = painter(process.stderr);
  const line = (level: string, obj: object, msg?: string) => {
    const fields = Object.entries(obj)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(" ");
    const time = new Date().toISOString().slice(11, 23);
    eprintln(`${c.dim(time)} ${level} ${msg ?? ""}${fields ? ` ${c.dim(fields)}` : ""}`);
  };
  return {
    info: (o, m) => line(c.cyan("INFO "), o, m),
    warn: (o, m) => line(c.yellow("WARN "), o, m),
    error: (o, m) => line(c.red("ERROR"), o, m),
    debug: (o, m) => {
      if (debug) line(c.dim("DEBUG"), o, m);
    },
  };
}

/** A logger whose lines wait until {@link HeldLogger.release} or are dropped. */
export interface HeldLogger extends LineLogger {
  /** Writes the lines held so far, then passes later ones straight through. */
  release(): void;
  /** Forgets the lines held so far; later ones pass straight through. */
  drop(): void;
}

/**
 * Holds what `logger` would print until the caller knows it wants it: a
 * workflow file loaded once more (to change its state store) prints its top
 * level's output once, not twice.
 */
export function heldLogger(logger: LineLogger): HeldLogger {
  let held: Array<() => void> | undefined = [];
  const level =
    (name: keyof LineLogger) =>
    (o: object, m?: string): void => {
      if (held) held.push(() => logger[name](o, m));
      else logger[name](o, m);
    };
  return {
    info: level("info"),
    warn: level("warn"),
    error: level("error"),
    debug: level("debug"),
    release() {
      const lines = held ?? [];
      held = undefined;
      for (const write of lines) write();
    },
    drop() {
      held = undefined;
    },
  };
}
