/** One log method: structured fields first, then a message (pino's order). */
export type LogFn = (fields: Record<string, unknown>, message?: string) => void;

/**
 * The subset of a pino logger the agent uses. A pino logger fits as is;
 * the default is silent, because libraries never print.
 */
export interface AgentLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

const noop: LogFn = () => {};

/** A logger that drops everything. */
export const silentLogger: AgentLogger = { debug: noop, info: noop, warn: noop, error: noop };
