import type { AgentRunResult } from "@sloth/client";
import type { Argv, CommandModule } from "yargs";
import { CliError, type GlobalArgs, parseKeyValues, withMaster } from "../context.js";
import { withMasterOptions } from "../master-options.js";
import {
  eprintln,
  formatDuration,
  type Painter,
  painter,
  printJson,
  table,
  writeOutput,
} from "../output.js";
import { onStopSignals, signalExitCode } from "../signals.js";

interface RunArgs extends GlobalArgs {
  target?: string;
  command: string[];
  timeout?: string;
  workdir?: string;
  env?: string | string[];
  quiet?: boolean;
  label?: string | string[];
  name?: string;
  parallel?: number;
  json?: boolean;
}

/**
 * Writes remote output; waits while the reader lags. A reader that went away
 * (EPIPE) is not the link's failure: the CLI's own handler stops the command.
 */

/** Output kept per stream and agent for `--json`: the rest is counted, not held. */
const JSON_OUTPUT_LIMIT = 16 * 1024 * 1024;

/** One agent's output as `--json` keeps it: the first JSON_OUTPUT_LIMIT bytes of each stream. */
class KeptOutput {
  readonly stdout: Buffer[] = [];
  readonly stderr: Buffer[] = [];
  readonly bytes = { stdout: 0, stderr: 0 };

  push(stream: "stdout" | "stderr", data: Uint8Array): void {
    const room = JSON_OUTPUT_LIMIT - this.bytes[stream];
    if (room > 0) this[stream].push(Buffer.from(data.subarray(0, room)));
    this.bytes[stream] += data.length;
  }
}

/** One agent's run as `--json` prints it. */
function resultJson(r: AgentRunResult, out: KeptOutput | undefined) {
  const cut = (stream: "stdout" | "stderr") => (out?.bytes[stream] ?? 0) > JSON_OUTPUT_LIMIT;
  return {
    agent: r.agent,
    exitCode: r.code,
    signal: r.signal ?? null,
    timedOut: r.timedOut,
    durationMs: r.durationMs,
    error: r.error ?? null,
    stdout: Buffer.concat(out?.stdout ?? []).toString("utf8"),
    stderr: Buffer.concat(out?.stderr ?? []).toString("utf8"),
    // Bytes the command wrote; more than `stdout`/`stderr` hold when they were cut.
    stdoutBytes: out?.bytes.stdout ?? 0,
    stderrBytes: out?.bytes.stderr ?? 0,
    truncated: cut("stdout") || cut("stderr"),
  };
}

function describeEnd(r: AgentRunResult, timeoutMs: number, c: Painter): string {
  const took = formatDuration(r.durationMs);
  if (r.error) return c.red(`✗ ${r.error}`);
  if (r.signal) {
    const why = r.timedOut
      ? `timed out after ${formatDuration(timeoutMs)}, killed by ${r.signal}`
      : `killed by ${r.signal}`;
    return c.red(`✗ ${why} on ${r.agent} (${took})`);
  }
  return r.code === 0
    ? c.green(`✓ exit 0 on ${r.agent} (${took})`)
    : c.red(`✗ exit ${r.code} on ${r.agent} (${took})`);
}

/** Splits output into lines and prefixes each with the agent name. */
class LinePrefixer {
  readonly #pending = new Map<string, Buffer>();
  constructor(readonly prefix: (agent: string) => string) {}

  async push(agent: string, stream: "stdout" | "stderr", data: Uint8Array): Promise<void> {
    const key = `${agent}\0${stream}`;
    let buf = Buffer.concat([this.#pending.get(key) ?? Buffer.alloc(0), data]);
    const out = stream === "stderr" ? process.stderr : process.stdout;
    for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10)) {
      await writeOutput(
        out,
        Buffer.concat([Buffer.from(this.prefix(agent)), buf.subarray(0, nl + 1)]),
      );
      buf = buf.subarray(nl + 1);
    }
    // Memory stays bounded for lines of any length: long partial lines go out as they are.
    if (buf.length > 64 * 1024) {
      await writeOutput(
        out,
        Buffer.concat([Buffer.from(this.prefix(agent)), buf, Buffer.from("\n")]),
      );
      buf = Buffer.alloc(0);
    }
    this.#pending.set(key, buf);
  }

  async flush(agent: string): Promise<void> {
    for (const stream of ["stdout", "stderr"] as const) {
      const key = `${agent}\0${stream}`;
      const buf = this.#pending.get(key);
      if (buf?.length) {
        await writeOutput(
          stream === "stderr" ? process.stderr : process.stdout,
          Buffer.concat([Buffer.from(this.prefix(agent)), buf, Buffer.from("\n")]),
        );
      }
      this.#pending.delete(key);
    }
  }
}

/** Runs a command on one agent, or on every agent a selector matches; returns the exit code. */
export async function runAgentCommand(argv: RunArgs): Promise<number> {
  const { parseDuration, runOnAgent, runOnAgents, worstCode } = await import("@sloth/client");
  const c = painter(process.stderr);
  const command = argv.command.join(" ");
  const env = parseKeyValues(argv.env, "--env");
  const labels = parseKeyValues(argv.label, "--label");
  const timeoutMs = argv.timeout ? parseDuration(argv.timeout, "s") : 0;
  const spec = { command, workdir: argv.workdir ?? "", env, timeoutMs: BigInt(timeoutMs) };
  const fanOut = argv.name !== undefined || argv.label !== undefined;
  const controller = new AbortController();
  let interrupted: NodeJS.Signals | undefined;
  const offSignals = onStopSignals((sig) => {
    interrupted ??= sig;
    controller.abort();
  });
  const started = Date.now();
  try {
    return await withMaster(argv, async ({ client, master }) => {
      if (!fanOut) {
        const agent = argv.target!;
        const kept = new KeptOutput();
        const r = await runOnAgent(agent, {
          client,
          masterAddress: master.address,
          spec,
          signal: controller.signal,
          // Once it runs: an agent that is not found gets the error alone.
          onStarted: () => {
            if (argv.quiet || argv.json) return;
            eprintln(`${c.dim("╭─")} ${c.bold("Agent:")} ${c.cyan(agent)}`);
            eprintln(`${c.dim("│")}  ${c.bold("Command:")} ${command}`);
            eprintln(c.dim("╰─"));
          },
          onOutput: (_a, stream, data) => {
            // --json: one object at the end, as with --label/--name.
            if (argv.json) kept.push(stream, data);
            else return writeOutput(stream === "stderr" ? process.stderr : process.stdout, data);
          },
        });
        if (argv.json) {
          printJson(resultJson(r, kept));
          return interrupted ? signalExitCode(interrupted) : r.code;
        }
        if (interrupted) {
          if (!argv.quiet)
            eprintln(
              c.yellow(
                `✗ interrupted: cancelled on ${agent} after ${formatDuration(Date.now() - started)}`,
              ),
            );
          return signalExitCode(interrupted);
        }
        if (r.error && !r.error.startsWith("could not start"))
          eprintln(`${c.red("error:")} ${r.error}`);
        else if (!argv.quiet) eprintln(describeEnd(r, timeoutMs, c));
        return r.code;
      }

      // `agent run web-1 --label role=web CMD` would run "web-1 CMD" everywhere.
      const first = argv.command[0];
      if (first !== undefined && argv.command.length > 1) {
        const named = await client.listAgents({ nameGlob: first }, { timeoutMs: 15_000 });
        if (named.agents.some((a) => a.name === first))
          throw new CliError(`'${first}' is an agent name, and --label/--name select agents too`, {
            hint: `run on one agent with \`agent run ${first} 'COMMAND'\`, or on a selection with \`agent run --label K=V 'COMMAND'\``,
            exitCode: 2,
          });
      }
      const { agents } = await client.listAgents(
        { labels, nameGlob: argv.name ?? "", status: 1 },
        { timeoutMs: 15_000 },
      );
      if (agents.length === 0) {
        throw new CliError("no active agent matches the selection", {
          hint: "check `sloth-runner agent list` with the same --label and --name",
        });
      }
      const names = agents.map((a) => a.name);
      const width = Math.max(...names.map((n) => n.length));
      const out = painter(process.stdout);
      const prefixer = new LinePrefixer((a) => `${out.cyan(a.padEnd(width))} ${out.dim("|")} `);
      const captured = new Map<string, KeptOutput>(names.map((n) => [n, new KeptOutput()]));
      const results = await runOnAgents(names, {
        client,
        masterAddress: master.address,
        spec,
        parallel: argv.parallel,
        signal: controller.signal,
        onOutput: (a, stream, data) => {
          if (argv.json) {
            captured.get(a)?.push(stream, data);
            return;
          }
          return prefixer.push(a, stream, data);
        },
        onExit: (r) => {
          if (!argv.json) void prefixer.flush(r.agent);
        },
      });
      if (argv.json) {
        printJson(results.map((r) => resultJson(r, captured.get(r.agent))));
      } else if (!argv.quiet) {
        const rows = [["AGENT", "EXIT", "DURATION", ""].map((h) => c.bold(h))];
        for (const r of results) {
          // Cancelled by our own Ctrl-C: not a failure of the agent or the link.
          const cancelled = interrupted !== undefined && r.code === 255;
          const state = cancelled
            ? c.yellow("interrupted")
            : r.error
              ? c.red(r.error)
              : r.signal
                ? c.red(r.signal)
                : r.code === 0
                  ? c.green("ok")
                  : c.red("failed");
          rows.push([
            r.agent,
            cancelled ? "-" : String(r.code),
            formatDuration(r.durationMs),
            state,
          ]);
        }
        eprintln();
        eprintln(table(rows));
        const failed = results.filter((r) => r.code !== 0).length;
        eprintln(
          interrupted
            ? c.yellow(
                `✗ interrupted: cancelled on ${results.length} agent(s) after ${formatDuration(Date.now() - started)}`,
              )
            : `${results.length} agent(s), ${results.length - failed} succeeded, ${failed} failed in ${formatDuration(Date.now() - started)}`,
        );
      }
      if (interrupted) return signalExitCode(interrupted);
      return worstCode(results);
    });
  } finally {
    offSignals();
  }
}

/** `sloth-runner agent run <name> <command...>` and `agent run --label k=v <command...>`. */
export const runCommand: CommandModule<GlobalArgs, RunArgs> = {
  command: "run [target] [command..]",
  aliases: ["exec"],
  describe:
    "Run a shell command on an agent (or on every agent matching --label/--name), streaming its output",
  builder: (y) =>
    withMasterOptions(y)
      .positional("target", {
        type: "string",
        describe: "Agent name (omit with --label or --name)",
      })
      .positional("command", { type: "string", array: true, describe: "Command, run with bash -c" })
      .option("timeout", {
        type: "string",
        describe: "Kill the command after this long (30s, 5m; a number is seconds)",
      })
      .option("workdir", { type: "string", describe: "Working directory on the agent" })
      .option("env", { type: "string", describe: "Environment variable K=V (repeatable)" })
      .option("quiet", { alias: "q", type: "boolean", describe: "No header, footer or summary" })
      .option("label", {
        type: "string",
        describe: "Run on every active agent with label K=V (repeatable, AND)",
      })
      .option("name", {
        type: "string",
        describe: "Run on every active agent whose name matches this glob ('web-*')",
      })
      .option("parallel", {
        type: "number",
        describe: "With --label/--name: at most N agents at once (default: all)",
      })
      .option("json", {
        type: "boolean",
        describe:
          "Print JSON at the end: one object (per agent with --label/--name) with the exit, timings and output (the first 16 MiB of each stream)",
      })
      .example("$0 agent run web-1 'uptime'", "")
      .example("$0 agent run web-1 -- ls -la /tmp", "put -- before a command with options")
      .example(
        "$0 agent run --label role=web 'systemctl is-active nginx'",
        "every active web agent",
      ) as unknown as Argv<RunArgs>,
  handler: async (argv) => {
    const fanOut = argv.name !== undefined || argv.label !== undefined;
    const words = [...(argv.command ?? []), ...((argv as { "--"?: string[] })["--"] ?? [])].map(
      String,
    );
    if (fanOut && argv.target !== undefined) words.unshift(argv.target);
    if (!fanOut && argv.target === undefined) {
      throw new CliError("missing agent name", {
        hint: "run `sloth-runner agent run NAME 'COMMAND'`, or select agents with --label/--name",
        exitCode: 2,
      });
    }
    if (words.length === 0) {
      throw new CliError("missing command", {
        hint: "run `sloth-runner agent run NAME 'COMMAND'`",
        exitCode: 2,
      });
    }
    if (argv.parallel !== undefined && (!Number.isInteger(argv.parallel) || argv.parallel < 1)) {
      throw new CliError(`invalid --parallel '${argv.parallel}'`, {
        hint: "use a whole number of at least 1",
        exitCode: 2,
      });
    }
    process.exitCode = await runAgentCommand({ ...argv, command: words });
  },
};
