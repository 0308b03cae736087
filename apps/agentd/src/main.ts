import { createRequire } from "node:module";
import { hostname } from "node:os";
import {
  type AgentStartFlags,
  agentStartFlags,
  agentTokenWarning,
  describeAgentEvent,
  startAgentFromFlags,
  stopOnSignals,
} from "@sloth/agent";
import { isLoopbackHost, isSlothError } from "@sloth/client";
import { pino } from "pino";
import yargs from "yargs";

const require = createRequire(import.meta.url);

/** The version of @sloth/agentd. */
export const VERSION: string = (require("../package.json") as { version: string }).version;

/** Thrown for usage errors, which exit 2 like other command-line tools. */
class UsageError extends Error {}

/**
 * Runs `sloth-agentd` with `argv` (without node and the script): serves
 * until SIGTERM/SIGINT or a Shutdown call. Sets `process.exitCode`; never
 * throws.
 */
export async function main(argv: string[]): Promise<void> {
  const debug = argv.includes("--debug");
  if (argv[0] === "install-service") {
    try {
      await installService(argv.slice(1));
    } catch (e) {
      process.exitCode = report(e, debug);
    }
    return;
  }
  try {
    const parsed = await parse(argv);
    if (!parsed) return;
    const { flags, logFormat } = parsed;
    // JSON lines for log collectors (the default); readable lines with text.
    const logger =
      logFormat === "json"
        ? pino(
            { level: debug ? "debug" : "info", base: { pid: process.pid } },
            pino.destination({ fd: 2, sync: true }),
          )
        : undefined;
    const warn = (message: string, fields: Record<string, unknown> = {}) => {
      if (logger) logger.warn(fields, message);
      else process.stderr.write(`warning: ${message}\n`);
    };
    const tokenWarning = agentTokenWarning(flags);
    if (tokenWarning) warn(tokenWarning);
    const name = flags.name ?? hostname();
    const agent = await startAgentFromFlags(flags, {
      logger,
      onEvent: logger
        ? undefined
        : (e) => {
            for (const line of describeAgentEvent(name, e)) process.stderr.write(`${line}\n`);
          },
    });
    const bind = flags.bindAddress ?? "0.0.0.0";
    if (!flags.tlsCert && !isLoopbackHost(bind))
      warn(`listening on ${bind} without TLS: tokens and output cross the network in clear text`, {
        bind,
      });
    const off = stopOnSignals(agent);
    try {
      await agent.wait();
    } finally {
      off();
      logger?.flush();
    }
  } catch (e) {
    process.exitCode = report(e, debug);
  }
}

async function parse(
  argv: string[],
): Promise<{ flags: AgentStartFlags; logFormat: "json" | "text" } | undefined> {
  let shown = false;
  const args = await yargs(argv)
    .scriptName("sloth-agentd")
    .usage("$0 [options]\n\nRun a Sloth Runner agent: serve commands and register with the master.")
    .options({
      ...agentStartFlags,
      "log-format": {
        choices: ["json", "text"] as const,
        default: "json" as const,
        describe: "Log as JSON lines (pino) or as readable lines",
      },
      debug: { type: "boolean", describe: "Log debug events and print stack traces" },
    })
    .version(VERSION)
    .alias("version", "V")
    .help()
    .alias("help", "h")
    .strict()
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg ?? "invalid arguments");
    })
    .parseAsync(argv, {}, (_err, _argv, output) => {
      // With exitProcess(false), --help and --version print and return:
      // the callback sees their text and keeps the daemon from starting.
      if (output) {
        shown = true;
        process.stdout.write(`${output}\n`);
      }
    });
  if (shown || args.help || args.version) return undefined;
  const flags: AgentStartFlags = {
    name: args.name,
    master: args.master,
    port: args.port,
    bindAddress: args.bindAddress,
    reportAddress: args.reportAddress,
    label: args.label,
    tokenFile: args.tokenFile,
    dataDir: args.dataDir,
    tlsCert: args.tlsCert,
    tlsKey: args.tlsKey,
    tlsCa: args.tlsCa,
    metricsPort: args.metricsPort,
    keepWorkspaces: args.keepWorkspaces,
    cacheLimit: args.cacheLimit,
  };
  return { flags, logFormat: args.logFormat };
}

/** Prints an error as one line on stderr (stack with --debug); returns the exit code. */
function report(e: unknown, debug: boolean): number {
  if (isSlothError(e)) {
    process.stderr.write(`error: ${e.describe()}\n`);
    if (debug) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
  if (e instanceof UsageError || (e instanceof Error && e.name === "YError")) {
    // yargs names options without dashes, and twice when camel-cased.
    const unknown = /^Unknown arguments?: (.*)$/.exec(e.message)?.[1];
    // yargs lists a value outside an option's choices over several lines.
    const choice = /Argument: ([^,\n]+), Given: ([^\n]*), Choices: ([^\n]*)/.exec(e.message);
    const message = choice
      ? `invalid value ${choice[2]} for --${choice[1]}: choose one of ${choice[3]}`
      : unknown
        ? `unknown option${unknown.includes(",") ? "s" : ""}: ${unknown
            .split(", ")
            .filter((n) => !/[A-Z]/.test(n))
            .map((n) => (n.length === 1 ? `-${n}` : `--${n}`))
            .join(", ")}`
        : e.message;
    process.stderr.write(`error: ${message}; run \`sloth-agentd --help\` to see the usage\n`);
    return 2;
  }
  const message = e instanceof Error ? e.message : String(e);
  process.stderr.write(
    `error: unexpected failure: ${message}. This is a bug: please report it with this line and ` +
      `sloth-agentd ${VERSION}, node ${process.version}, ${process.platform}-${process.arch}\n`,
  );
  if (debug && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  return 70;
}

/**
 * `sloth-agentd install-service [agent flags] [--print] [--unit-dir DIR] [--user U]`:
 * writes a systemd unit running this agent with the given flags.
 */
async function installService(argv: string[]): Promise<void> {
  const { serviceArgs, serviceUnitFor, writeServiceUnit } = await import("@sloth/client");
  const args = await yargs(argv)
    .scriptName("sloth-agentd install-service")
    .options({
      ...agentStartFlags,
      "log-format": { choices: ["json", "text"] as const },
      print: { type: "boolean", describe: "Print the unit instead of writing it" },
      "unit-dir": {
        type: "string",
        default: "/etc/systemd/system",
        describe: "Where to write the unit",
      },
      user: { type: "string", default: "root", describe: "User the service runs as" },
      debug: { type: "boolean" },
    })
    .strict()
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg ?? "invalid arguments");
    })
    .parseAsync();
  const name = args.name ?? (await import("node:os")).hostname();
  if (!args.tokenFile) {
    process.stderr.write(
      "warning: no --token-file: the service reads <data dir>/master/token of its user; pass --token-file to be explicit\n",
    );
  }
  const unitName = `sloth-runner-agent-${name}`;
  const unit = serviceUnitFor({
    unitName,
    description: `Sloth Runner Agent - ${name}`,
    script: process.argv[1] ?? "sloth-agentd",
    args: serviceArgs(argv, [], process.env, (m) => process.stderr.write(`warning: ${m}\n`)),
    user: args.user,
  });
  if (args.print) {
    process.stdout.write(unit);
    return;
  }
  const file = writeServiceUnit(args.unitDir, unitName, unit);
  process.stdout.write(
    `Wrote ${file}\nEnable it with: systemctl daemon-reload && systemctl enable --now ${unitName}\n`,
  );
}
