/**
 * Listens for the signals that stop a foreground command: Ctrl-C (SIGINT),
 * SIGTERM, and SIGHUP (the terminal or SSH session closed, which never
 * reaches tasks in their own process groups). After a hangup the terminal is
 * gone, so failed writes to it are ignored instead of crashing the cleanup.
 * Returns a function that stops listening.
 */
export function onStopSignals(handler: (sig: NodeJS.Signals) => void): () => void {
  const quiet = () => {};
  const on = (sig: NodeJS.Signals) => {
    if (sig === "SIGHUP") for (const s of [process.stdout, process.stderr]) s.on("error", quiet);
    handler(sig);
  };
  const sigs = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  for (const s of sigs) process.on(s, on);
  return () => {
    for (const s of sigs) process.off(s, on);
  };
}

/**
 * The exit code of a command stopped by `sig`, as shells report it (128 + N).
 * Stopped because the reader of its output went away (the bin turns EPIPE
 * into SIGTERM, so runs cancel their tasks): 141, as for SIGPIPE.
 */
export function signalExitCode(sig: NodeJS.Signals): number {
  if (sig === "SIGTERM" && outputClosed()) return 141;
  return sig === "SIGTERM" ? 143 : sig === "SIGHUP" ? 129 : 130;
}

/** True once a write to stdout or stderr failed with EPIPE. */
export function outputClosed(): boolean {
  return (globalThis as Record<symbol, unknown>)[Symbol.for("sloth-runner.output-closed")] === true;
}

/**
 * An AbortSignal that fires on the first stop signal (see
 * {@link onStopSignals}), for work that must stop its commands and clean up
 * rather than die: `stoppedBy()` says which signal came, `off()` stops
 * listening.
 */
export function abortOnStopSignals(): {
  signal: AbortSignal;
  stoppedBy(): NodeJS.Signals | undefined;
  off(): void;
} {
  const stop = new AbortController();
  let by: NodeJS.Signals | undefined;
  const off = onStopSignals((sig) => {
    by ??= sig;
    stop.abort();
  });
  return { signal: stop.signal, stoppedBy: () => by, off };
}
