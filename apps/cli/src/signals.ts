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

/** The exit code of a command stopped by `sig`, as shells report it (128 + N). */
export function signalExitCode(sig: NodeJS.Signals): number {
  return sig === "SIGTERM" ? 143 : sig === "SIGHUP" ? 129 : 130;
}
