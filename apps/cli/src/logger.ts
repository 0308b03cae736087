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
