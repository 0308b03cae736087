import type { Argv, CommandModule } from "yargs";
import { CliError, type GlobalArgs, parseKeyValues, withMaster } from "../context.js";
import { withMasterOptions } from "../master-options.js";
import { eprintln, formatDuration, painter, writeOutput } from "../output.js";
import { onStopSignals, signalExitCode } from "../signals.js";

interface ShellArgs extends GlobalArgs {
  name: string;
  workdir?: string;
  env?: string | string[];
}

type Item = Uint8Array | { rows: number; cols: number };

/**
 * Standard input, and the terminal's new size when it changes, as an async
 * iterable that can be ended from outside.
 */
function stdinSource(): { input: AsyncIterable<Item>; close(): void } {
  const queue: Item[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  const stdin = process.stdin;
  const onData = (chunk: Buffer) => {
    queue.push(chunk);
    // Held back while the link is slower than the typing or the pipe.
    if (queue.length > 16) stdin.pause();
    wake?.();
  };
  const onEnd = () => {
    ended = true;
    wake?.();
  };
  const onResize = () => {
    const { rows, columns } = process.stdout;
    if (rows > 0 && columns > 0) queue.push({ rows, cols: columns });
    wake?.();
  };
  stdin.on("data", onData).on("end", onEnd).on("error", onEnd);
  if (process.stdout.isTTY) process.stdout.on("resize", onResize);
  const close = () => {
    process.stdout.off("resize", onResize);
    if (ended && queue.length === 0) return;
    ended = true;
    queue.length = 0;
    stdin.off("data", onData).off("end", onEnd).off("error", onEnd);
    stdin.pause();
    wake?.();
  };
  async function* input(): AsyncGenerator<Item> {
    for (;;) {
      const chunk = queue.shift();
      if (chunk) {
        if (queue.length <= 4 && stdin.isPaused() && !ended) stdin.resume();
        yield chunk;
      } else if (ended) return;
      else await new Promise<void>((resolve) => (wake = resolve));
    }
  }
  return { input: input(), close };
}

/** Runs the session; returns the shell's exit code. */
async function runShell(argv: ShellArgs): Promise<number> {
  const { shellOnAgent } = await import("@sloth/client");
  const c = painter(process.stderr);
  const env = parseKeyValues(argv.env, "--env");
  const terminal = process.stdin.isTTY === true;
  const controller = new AbortController();
  let interrupted: NodeJS.Signals | undefined;
  let raw = false;
  const restore = () => {
    if (raw) process.stdin.setRawMode(false);
    raw = false;
  };
  const offSignals = onStopSignals((sig) => {
    interrupted ??= sig;
    controller.abort();
  });
  const source = stdinSource();
  const started = Date.now();
  try {
    return await withMaster(argv, async ({ client, master }) => {
      const r = await shellOnAgent(argv.name, {
        client,
        masterAddress: master.address,
        open: {
          tty: terminal,
          rows: process.stdout.rows ?? 0,
          cols: process.stdout.columns ?? 0,
          term: process.env.TERM ?? "",
          workdir: argv.workdir ?? "",
          env,
        },
        input: source.input,
        signal: controller.signal,
        onStarted: (tty) => {
          if (!terminal) return;
          eprintln(
            c.dim(
              `Connected to ${argv.name} through ${master.address}${tty ? "" : " (no terminal there: line mode)"}; \`exit\` or Ctrl-D leaves.`,
            ),
          );
          // Keystrokes go as typed: the remote terminal echoes and edits.
          if (tty) {
            process.stdin.setRawMode(true);
            raw = true;
          }
        },
        onOutput: (stream, data) =>
          writeOutput(stream === "stderr" ? process.stderr : process.stdout, data),
      });
      restore();
      if (interrupted) {
        eprintln(
          c.yellow(
            `✗ interrupted: shell on ${argv.name} closed after ${formatDuration(Date.now() - started)}`,
          ),
        );
        return signalExitCode(interrupted);
      }
      if (r.error) {
        eprintln(`${c.red("error:")} ${r.error}`);
        return r.code;
      }
      if (r.signal) eprintln(c.red(`✗ shell on ${r.agent} killed by ${r.signal}`));
      return r.code;
    });
  } finally {
    restore();
    source.close();
    offSignals();
  }
}

/** `sloth-runner agent shell <name>`. */
export const shellCommand: CommandModule<GlobalArgs, ShellArgs> = {
  command: "shell <name>",
  describe:
    "Open an interactive shell on an agent (a terminal when run from one; piped input runs as a script)",
  builder: (y) =>
    withMasterOptions(y)
      .positional("name", { type: "string", describe: "Agent name" })
      .option("workdir", { type: "string", describe: "Working directory on the agent" })
      .option("env", { type: "string", describe: "Environment variable K=V (repeatable)" })
      .example("$0 agent shell web-1", "")
      .example(
        "$0 agent shell web-1 < deploy.sh",
        "run a local script there",
      ) as unknown as Argv<ShellArgs>,
  handler: async (argv) => {
    if (!argv.name)
      throw new CliError("missing agent name", {
        hint: "run `sloth-runner agent shell NAME`",
        exitCode: 2,
      });
    process.exitCode = await runShell(argv);
  },
};
