import yargs from "yargs";
import { commands } from "./commands/index.js";
import { CliError, ExitCode } from "./context.js";
import { eprintln, painter } from "./output.js";
import { VERSION } from "./version.js";

/**
 * Runs the `sloth-runner` command line with `argv` (without node and the
 * script) and sets `process.exitCode`. Never throws.
 */
export async function main(argv: string[]): Promise<void> {
  const debug = argv.includes("--debug");
  let cli = yargs(argv)
    .scriptName("sloth-runner")
    .parserConfiguration({ "populate--": true })
    .usage("$0 <command> [options]")
    .option("data-dir", {
      type: "string",
      describe: "Data directory (default: $SLOTH_RUNNER_DATA_DIR, else ~/.sloth-runner)",
      global: true,
    })
    .option("debug", {
      type: "boolean",
      describe: "Show stack traces and debug logs",
      global: true,
    })
    .version(VERSION)
    .alias("version", "V")
    .help()
    .alias("help", "h")
    .strict()
    .demandCommand(1, "missing command")
    .recommendCommands()
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .exitProcess(false)
    .fail((msg, err) => {
      throw (
        err ??
        new CliError(msg ?? "invalid arguments", {
          hint: "run with --help to see the usage",
          exitCode: 2,
        })
      );
    });
  for (const command of commands) cli = cli.command(command);
  try {
    await cli.parseAsync();
  } catch (e) {
    process.exitCode = await report(e, debug);
    const { isDaemonChild, notifyParent } = await import("./daemon.js");
    if (isDaemonChild()) notifyParent({ type: "error", message: lastErrorLine });
  }
}

let lastErrorLine = "";

/** The last error line printed, for a daemon child to pass to its parent. */
export function lastError(): string {
  return lastErrorLine;
}

function printError(red: (s: string) => string, line: string): void {
  lastErrorLine = line;
  eprintln(`${red("error:")} ${line}`);
}

/** Prints an error as one line (stack only with --debug) and returns the exit code. */
export async function report(e: unknown, debug: boolean): Promise<number> {
  if (e instanceof ExitCode) return e.code;
  const red = painter(process.stderr).red;
  if (e instanceof CliError) {
    printError(red, e.hint ? `${e.message}; ${e.hint}` : e.message);
    if (debug && e.cause instanceof Error) eprintln(e.cause.stack);
    return e.exitCode;
  }
  const { isSlothError } = await import("@sloth/client");
  if (isSlothError(e)) {
    printError(red, e.describe());
    if (debug) eprintln(e.stack);
    return 1;
  }
  if (e instanceof Error && e.name === "YError") {
    printError(red, `${e.message}; run with --help to see the usage`);
    return 2;
  }
  const message = e instanceof Error ? e.message : String(e);
  printError(
    red,
    `unexpected failure: ${message}. This is a bug: please report it with this line and ` +
      `sloth-runner ${VERSION}, node ${process.version}, ${process.platform}-${process.arch}`,
  );
  if (debug && e instanceof Error) eprintln(e.stack);
  return 70;
}
