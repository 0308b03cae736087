import { once } from "node:events";
import type { SlothError } from "@sloth/client";
import type { Argv, CommandModule } from "yargs";
import { CliError, type GlobalArgs, parseKeyValues, withMaster } from "../context.js";
import { withMasterOptions } from "../master-options.js";
import { eprintln, formatDuration, painter } from "../output.js";

interface RunArgs extends GlobalArgs {
  name: string;
  command: string[];
  timeout?: string;
  workdir?: string;
  env?: string[];
  quiet?: boolean;
}

/** Exit code when the command could not start or the link failed, as ssh does. */
export const LINK_FAILED = 255;

async function write(stream: NodeJS.WriteStream, data: Uint8Array): Promise<void> {
  if (!stream.write(data)) await once(stream, "drain");
}

/** Runs one command on one agent through the master; returns the exit code. */
export async function runOnAgent(argv: RunArgs): Promise<number> {
  const c = painter(process.stderr);
  const command = argv.command.join(" ");
  const env = parseKeyValues(argv.env, "--env");
  const { parseDuration } = await import("@sloth/client");
  const timeoutMs = argv.timeout ? parseDuration(argv.timeout, "s") : 0;
  const controller = new AbortController();
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
    controller.abort();
  };
  process.on("SIGINT", onSigint);
  process.on("SIGTERM", onSigint);
  const started = Date.now();
  try {
    return await withMaster(argv, async ({ client, fail }) => {
      if (!argv.quiet) {
        eprintln(c.dim("╭─") + ` ${c.bold("Agent:")} ${c.cyan(argv.name)}`);
        eprintln(`${c.dim("│")}  ${c.bold("Command:")} ${command}`);
        eprintln(c.dim("╰─"));
      }
      let code = LINK_FAILED;
      let footer = "";
      try {
        const stream = client.runOnAgent(
          {
            agentName: argv.name,
            spec: { command, workdir: argv.workdir ?? "", env, timeoutMs: BigInt(timeoutMs) },
          },
          { signal: controller.signal },
        );
        for await (const res of stream) {
          const ev = res.event?.event;
          if (!ev) continue;
          if (ev.case === "output") {
            await write(ev.value.stream === 2 ? process.stderr : process.stdout, ev.value.data);
          } else if (ev.case === "exit") {
            const x = ev.value;
            const took = formatDuration(Number(x.durationMs));
            if (x.startError) {
              code = LINK_FAILED;
              footer = c.red(`✗ could not start: ${x.startError}`);
            } else if (x.signalNumber > 0) {
              code = 128 + x.signalNumber;
              const why = x.timedOut
                ? `timed out after ${formatDuration(timeoutMs)}, killed by ${x.signal}`
                : `killed by ${x.signal}`;
              footer = c.red(`✗ ${why} on ${argv.name} (${took})`);
            } else {
              code = x.exitCode;
              footer =
                code === 0
                  ? c.green(`✓ exit 0 on ${argv.name} (${took})`)
                  : c.red(`✗ exit ${code} on ${argv.name} (${took})`);
            }
          }
        }
      } catch (e) {
        if (interrupted) {
          eprintln(
            c.yellow(
              `✗ interrupted: cancelled on ${argv.name} after ${formatDuration(Date.now() - started)}`,
            ),
          );
          return 130;
        }
        const err: SlothError = fail(e);
        eprintln(`${c.red("error:")} ${err.describe()}`);
        return LINK_FAILED;
      }
      if (!footer) footer = c.red(`✗ the link to ${argv.name} ended without an exit status`);
      if (!argv.quiet) eprintln(footer);
      return code;
    });
  } finally {
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigint);
  }
}

/** `sloth-runner agent run <name> <command...>`. */
export const runCommand: CommandModule<GlobalArgs, RunArgs> = {
  command: "run <name> [command..]",
  aliases: ["exec"],
  describe: "Run a shell command on an agent, streaming its output",
  builder: (y) =>
    withMasterOptions(y)
      .positional("name", { type: "string", demandOption: true, describe: "Agent name" })
      .positional("command", {
        type: "string",
        array: true,
        demandOption: true,
        describe: "Command, run with bash -c",
      })
      .option("timeout", {
        type: "string",
        describe: "Kill the command after this long (30s, 5m; a number is seconds)",
      })
      .option("workdir", { type: "string", describe: "Working directory on the agent" })
      .option("env", {
        type: "string",
        array: true,
        describe: "Environment variable K=V (repeatable)",
      })
      .option("quiet", { alias: "q", type: "boolean", describe: "No header and footer" })
      .example("$0 agent run web-1 'uptime'", "")
      .example(
        "$0 agent run web-1 -- ls -la /tmp",
        "put -- before a command with options",
      ) as unknown as Argv<RunArgs>,
  handler: async (argv) => {
    const command = [...(argv.command ?? []), ...((argv as { "--"?: string[] })["--"] ?? [])].map(
      String,
    );
    if (command.length === 0) {
      throw new CliError("missing command", {
        hint: "run `sloth-runner agent run NAME 'COMMAND'`",
        exitCode: 2,
      });
    }
    process.exitCode = await runOnAgent({ ...argv, command });
  },
};
