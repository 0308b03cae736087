import type { Argv, CommandModule } from "yargs";
import { CliError, dataDirOf, type GlobalArgs } from "../context.js";
import { isDaemonChild, notifyParent } from "../daemon.js";
import { daemonLogger, type LogFormat } from "../logger-factory.js";
import { eprintln, painter, println } from "../output.js";

interface AgentStartArgs extends GlobalArgs {
  daemon?: boolean;
  logFormat?: LogFormat;
  name?: string;
  port?: number;
  bindAddress?: string;
  reportAddress?: string;
  label?: string | string[];
  metricsPort?: number;
  keepWorkspaces?: number;
  cacheLimit?: string;
}

/** Options of `agent start` (also accepted by bare `agent`), the same as sloth-agentd's. */
export function startAgentOptions<T>(y: Argv<T>): Argv<T & AgentStartArgs> {
  return y
    .option("name", { type: "string", describe: "Agent name (default: host name)" })
    .option("master", {
      type: "string",
      describe:
        "Master HOST:PORT or name (default: $SLOTH_RUNNER_MASTER_ADDR, the selected master, localhost:50053)",
    })
    .option("port", { alias: "p", type: "number", default: 50051, describe: "Port to listen on" })
    .option("bind-address", {
      type: "string",
      default: "0.0.0.0",
      describe: "Address to listen on",
    })
    .option("report-address", {
      type: "string",
      describe: "HOST:PORT the master should dial (NAT, containers)",
    })
    .option("label", { type: "string", describe: "Label KEY=VALUE (repeatable)" })
    .option("token-file", {
      type: "string",
      describe: "Cluster token file (default: $SLOTH_RUNNER_TOKEN, else <data dir>/master/token)",
    })
    .option("metrics-port", {
      type: "number",
      describe: "Serve Prometheus /metrics over HTTP on this port",
    })
    .option("cache-limit", {
      type: "string",
      describe:
        "Bound of the cache of delegated tasks' files, such as 2G or 500M (default 5G; least recently used first out)",
    })
    .option("keep-workspaces", {
      type: "number",
      describe:
        "Finished delegated-task workspaces kept to recycle for the next task (default 2; 0 deletes each after its task)",
    })
    .option("daemon", {
      type: "boolean",
      describe: "Run in the background (pid and log in <data dir>/agents/NAME/)",
    })
    .option("log-format", {
      choices: ["text", "json"] as const,
      describe: "Log as readable lines or JSON (default: text; JSON with --daemon)",
    })
    .option("tls-cert", {
      type: "string",
      describe: "Serve TLS with this certificate (PEM); also the client certificate",
    })
    .option("tls-key", { type: "string", describe: "Private key of --tls-cert (PEM)" })
    .option("tls-ca", {
      type: "string",
      describe: "CA certificate (PEM): verifies the master, requires callers' certificates (mTLS)",
    }) as unknown as Argv<T & AgentStartArgs>;
}

/** Runs an agent in the foreground until SIGINT/SIGTERM or a Shutdown call. */
export async function runAgent(argv: AgentStartArgs): Promise<void> {
  const {
    startAgentFromFlags,
    stopOnSignals,
    AgentNameHeldError,
    agentTokenWarning,
    describeAgentEvent,
  } = await import("@sloth/agent");
  const { isSlothError } = await import("@sloth/client");
  const os = await import("node:os");
  const name = argv.name ?? os.hostname();
  const dir = (await dataDirOf(argv, true)).agent(name);
  if (argv.daemon) {
    const { startDaemon, argsWithoutDaemon } = await import("../daemon.js");
    const { pid, address } = await startDaemon({
      args: argsWithoutDaemon(),
      logFile: dir.log,
      pidFile: dir.pid,
      what: `agent '${name}'`,
    });
    println(`Agent '${name}' started in the background (pid ${pid}), listening on ${address}`);
    println(`Log: ${dir.log}; stop it with \`sloth-runner agent stop ${name} --local\``);
    const { isLoopbackHost } = await import("@sloth/client");
    const bind = argv.bindAddress ?? "0.0.0.0";
    if (!argv.tlsCert && !isLoopbackHost(bind))
      eprintln(painter(process.stderr).yellow(`warning: ${plaintextWarning(bind)}`));
    return;
  }
  const { claimPidFile, releasePidFile } = await import("@sloth/client");
  claimPidFile(dir.pid, process.pid, `agent '${name}'`);
  process.once("exit", () => releasePidFile(dir.pid, process.pid));
  const json = (argv.logFormat ?? (isDaemonChild() ? "json" : "text")) === "json";
  let listening = "";
  const logger = json ? await daemonLogger("json", argv.debug) : undefined;
  const tokenWarning = agentTokenWarning({
    master: argv.master,
    tokenFile: argv.tokenFile,
    dataDir: argv.dataDir,
  });
  if (tokenWarning) {
    if (logger) logger.warn({}, tokenWarning);
    else eprintln(painter(process.stderr).yellow(`warning: ${tokenWarning}`));
  }
  const agent = await startAgentFromFlags(
    {
      name: argv.name,
      master: argv.master,
      port: argv.port,
      bindAddress: argv.bindAddress,
      reportAddress: argv.reportAddress,
      label: typeof argv.label === "string" ? [argv.label] : argv.label,
      tokenFile: argv.tokenFile,
      dataDir: argv.dataDir,
      tlsCert: argv.tlsCert,
      tlsKey: argv.tlsKey,
      tlsCa: argv.tlsCa,
      metricsPort: argv.metricsPort,
      keepWorkspaces: argv.keepWorkspaces,
      cacheLimit: argv.cacheLimit,
    },
    {
      logger,
      onEvent: (e) => {
        // Ready once the master has answered (or is still unreachable, which
        // the agent retries): a refused token or a held name fails the start.
        if (e.type === "listening") listening = e.address;
        if (e.type === "registered" || e.type === "registration-failed")
          notifyParent({ type: "ready", address: listening });
        if (json) return;
        const c = painter(process.stderr);
        for (const line of describeAgentEvent(name, e))
          eprintln(line.startsWith("warning: ") ? c.yellow(line) : line);
      },
    },
  );
  const { isLoopbackHost } = await import("@sloth/client");
  const bind = argv.bindAddress ?? "0.0.0.0";
  if (!argv.tlsCert && !isLoopbackHost(bind)) {
    // In the JSON log as one of its lines; on the terminal otherwise.
    if (logger) logger.warn({ bind }, plaintextWarning(bind));
    else eprintln(painter(process.stderr).yellow(`warning: ${plaintextWarning(bind)}`));
  }
  const off = stopOnSignals(agent);
  try {
    await agent.wait();
  } catch (e) {
    if (e instanceof AgentNameHeldError || isSlothError(e, "SLOTH_AGENT_NAME_HELD")) {
      throw new CliError(`agent name '${name}' is held by another agent`, {
        hint: `run \`sloth-runner agent delete ${name}\``,
      });
    }
    throw e;
  } finally {
    off();
  }
}

/** `sloth-runner agent start`. */
export const startAgentCommand: CommandModule<GlobalArgs, AgentStartArgs> = {
  command: "start",
  describe: "Start an agent in the foreground and register it with the master",
  builder: (y) => startAgentOptions(y),
  handler: (argv) => runAgent(argv),
};

function plaintextWarning(bind: string): string {
  return `listening on ${bind} without TLS: tokens and output cross the network in clear text`;
}
