import { isDaemonChild } from "./daemon.js";
import { type LineLogger, lineLogger } from "./logger.js";

/** How daemons log: readable lines, or one JSON object per line (pino). */
export type LogFormat = "text" | "json";

/** The logger for a long-running command: JSON (pino) in the background or when asked, else text. */
export async function daemonLogger(
  format: LogFormat | undefined,
  debug: boolean | undefined,
): Promise<LineLogger> {
  if ((format ?? (isDaemonChild() ? "json" : "text")) === "text") return lineLogger(debug);
  const { pino } = await import("pino");
  const log = pino(
    { level: debug ? "debug" : "info", base: { pid: process.pid } },
    pino.destination({ fd: 2, sync: true }),
  );
  return {
    info: (o, m) => log.info(o, m),
    warn: (o, m) => log.warn(o, m),
    error: (o, m) => log.error(o, m),
    debug: (o, m) => log.debug(o, m),
  };
}
