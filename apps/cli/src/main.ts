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
      throw err ?? usageError(msg ?? "invalid arguments", argv);
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
  const system = systemFailure(e);
  if (system !== undefined) {
    printError(red, system);
    if (debug && e instanceof Error) eprintln(e.stack);
    return 1;
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

/** The first word of each top-level command ("run", "agent", ...). */
function commandNames(): string[] {
  return commands.map((c) => String(c.command ?? "").split(" ")[0] ?? "").filter(Boolean);
}

/** yargs' usage message, said in this CLI's words where it is vague. */
function usageError(msg: string, argv: readonly string[]): CliError {
  const names = commandNames();
  const at = argv.findIndex((a) => names.includes(a));
  if (at === -1 && /^(Unknown argument|Did you mean)/.test(msg)) {
    // The first word that is not an option's value.
    const first = argv.find(
      (a, i) => !a.startsWith("-") && !(i > 0 && /^--[^=]+$/.test(argv[i - 1] as string)),
    );
    const guess = /^Did you mean (\S+)\?/.exec(msg)?.[1];
    // yargs suggests the nearest command however far it is ('events' → 'agent').
    const near = guess !== undefined && first !== undefined && closeEnough(first, guess);
    return new CliError(first === undefined ? "missing command" : `unknown command '${first}'`, {
      hint: `${near ? `did you mean '${guess}'? ` : ""}the commands are: ${names.join(", ")}`,
      exitCode: 2,
    });
  }
  // A word after a command group that is none of its commands (`agent install`).
  const sub = /^Unknown arguments?: ([^,\s]+)/.exec(msg)?.[1];
  if (at !== -1 && sub !== undefined && argv[at + 1] === sub && /^[a-z][a-z-]*$/.test(sub))
    return new CliError(`unknown command '${argv[at]} ${sub}'`, {
      hint: `run \`sloth-runner ${argv[at]} --help\` to see its commands`,
      exitCode: 2,
    });
  const negative = argv.find((a) => /^-\d/.test(a));
  if (negative !== undefined && /^Unknown argument/.test(msg)) {
    return new CliError(
      `invalid value '${negative}': negative numbers and durations are not accepted`,
      {
        hint: "give a positive value",
        exitCode: 2,
      },
    );
  }
  // A command taking arguments of its own (`run [target]`) has no subcommands.
  const def = commands.find((c) => String(c.command ?? "").split(" ")[0] === argv[at]);
  const leaf = /[<[]/.test(String(def?.command ?? "").replace(/<command>/g, ""));
  const path = (at === -1 ? [] : argv.slice(at))
    .filter((w, i) => i === 0 || /^[a-z][a-z-]*$/.test(w))
    .slice(0, leaf ? 1 : 2)
    .filter((w) => /^[a-z][a-z-]*$/.test(w))
    .join(" ");
  // yargs lists a value outside an option's choices over several lines.
  const choice = /Argument: ([^,\n]+), Given: ([^\n]*), Choices: ([^\n]*)/.exec(msg);
  if (choice) msg = `invalid value ${choice[2]} for --${choice[1]}: choose one of ${choice[3]}`;
  const unknown = /^Unknown arguments?: (.*)$/.exec(msg)?.[1];
  if (unknown !== undefined) {
    // yargs names options without dashes, and twice when camel-cased.
    const given = unknown
      .split(", ")
      .map((n) => argv.find((a) => a === `--${n}` || a.startsWith(`--${n}=`) || a === `-${n}`) ?? n)
      .map((n) => n.split("=")[0] as string)
      .filter((n, i, all) => all.indexOf(n) === i && (n.startsWith("-") || argv.includes(n)));
    const shown = given.length > 0 ? given : unknown.split(", ");
    const kind = shown.every((n) => n.startsWith("-")) ? "option" : "argument";
    msg = `unknown ${kind}${shown.length > 1 ? "s" : ""}: ${shown.join(", ")}`;
  }
  const missing = /^Not enough non-option arguments/.test(msg);
  return new CliError(
    missing ? `missing argument${path ? ` to \`sloth-runner ${path}\`` : ""}` : msg,
    {
      hint: `run \`sloth-runner ${path ? `${path} ` : ""}--help\` to see the usage`,
      exitCode: 2,
    },
  );
}

/** True when `guess` is a plausible correction of `word` (a typo away). */
function closeEnough(word: string, guess: string): boolean {
  const a = word.toLowerCase();
  const b = guess.toLowerCase();
  if (b.startsWith(a) || a.startsWith(b)) return true;
  // Edit distance, a swap of two neighbours counting as one edit.
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const up = d[i - 1] as number[];
      row[j] = Math.min(
        (up[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (up[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        row[j] = Math.min(row[j] as number, ((d[i - 2] as number[])[j - 2] as number) + 1);
    }
  return ((d[a.length] as number[])[b.length] as number) <= (b.length >= 5 ? 2 : 1);
}

const FS_REASONS: Record<string, [string, string]> = {
  EROFS: [
    "the file system is read-only",
    "use a data directory on a writable file system (--data-dir)",
  ],
  EACCES: ["permission denied", "fix the permissions, or use another data directory (--data-dir)"],
  EPERM: ["permission denied", "fix the permissions, or use another data directory (--data-dir)"],
  ENOSPC: ["the disk is full", "free some space"],
  EDQUOT: ["the disk quota is exhausted", "free some space"],
  ENOTDIR: ["a part of the path is not a directory", "check the path"],
  EISDIR: ["it is a directory", "check the path"],
  ENOENT: [
    "no such file or directory",
    "check the path, and that its folder exists and is writable",
  ],
};

/**
 * A failure of the machine rather than of this program (a read-only or full
 * disk, a permission), said as one line naming the file and the fix.
 */
function systemFailure(e: unknown): string | undefined {
  const err = e as { code?: unknown; path?: unknown; syscall?: unknown; message?: unknown };
  if (typeof err?.code !== "string") return undefined;
  const fsReason = FS_REASONS[err.code];
  if (fsReason && typeof err.path === "string") {
    const action = typeof err.syscall === "string" ? err.syscall : "use";
    return `cannot ${action} ${err.path}: ${fsReason[0]}; ${fsReason[1]}`;
  }
  if (err.code === "SQLITE_FULL" || err.code.startsWith("SQLITE_IOERR"))
    return `a database in the data directory cannot be written: the disk is full or failing (${String(err.message)}); free some space, or check the file system`;
  if (err.code === "SQLITE_CANTOPEN" || err.code === "SQLITE_READONLY")
    return `a database in the data directory cannot be opened for writing (${String(err.message)}); check that the data directory and its files are writable, or use another (--data-dir)`;
  if (err.code === "SQLITE_CORRUPT" || err.code === "SQLITE_NOTADB")
    return `a database in the data directory is damaged (${String(err.message)}); run with --debug to see which, and move that file aside`;
  return undefined;
}
