import type { Argv, CommandModule } from "yargs";
import { CliError, dataDirOf, type GlobalArgs } from "../context.js";
import { isDaemonChild, notifyParent } from "../daemon.js";
import { daemonLogger, type LogFormat } from "../logger-factory.js";
import { eprintln, painter, println } from "../output.js";

interface StartArgs extends GlobalArgs {
  daemon?: boolean;
  logFormat?: LogFormat;
  port: number;
  bind: string;
  heartbeatInterval: string;
  agentTtl: string;
  agentGrace: string;
  shutdownTimeout: string;
}

/** Options of `master start` (also accepted by bare `master`). */
export function startOptions<T>(y: Argv<T>): Argv<T & StartArgs> {
  return y
    .option("port", { alias: "p", type: "number", default: 50053, describe: "Port to listen on" })
    .option("bind", {
      alias: "bind-address",
      type: "string",
      default: "0.0.0.0",
      describe: "Address to bind (--bind-address, as agents name it, works too)",
    })
    .option("token-file", {
      type: "string",
      describe:
        "Cluster token file (default: $SLOTH_RUNNER_TOKEN, else <data dir>/master/token, created if missing)",
    })
    .option("tls-cert", {
      type: "string",
      describe: "Serve TLS with this certificate (PEM); also used to dial agents",
    })
    .option("tls-key", { type: "string", describe: "Private key of --tls-cert (PEM)" })
    .option("tls-ca", {
      type: "string",
      describe:
        "CA certificate (PEM): clients and agents must present certificates it signed (mTLS); verifies agents",
    })
    .option("daemon", {
      type: "boolean",
      describe: "Run in the background (pid and log in <data dir>/master/)",
    })
    .option("log-format", {
      choices: ["text", "json"] as const,
      describe: "Log lines as text or JSON (default: text; JSON with --daemon)",
    })
    .option("heartbeat-interval", {
      type: "string",
      default: "5s",
      describe: "Heartbeat interval told to agents",
    })
    .option("agent-ttl", {
      type: "string",
      default: "15s",
      describe: "Agents without a heartbeat for TTL + grace become inactive",
    })
    .option("agent-grace", { type: "string", default: "10s", describe: "Grace added to the TTL" })
    .option("shutdown-timeout", {
      type: "string",
      default: "30s",
      describe: "On SIGTERM/SIGINT, let runs finish this long before cancelling them",
    }) as unknown as Argv<T & StartArgs>;
}

/** Reads (creating if needed) the master's token file, telling the operator when it was created. */
function announceToken(
  file: string,
  ensure: (f: string) => { token: string; created: boolean },
): string {
  const t = ensure(file);
  if (t.created) {
    eprintln(`Created the cluster token in ${file} (mode 0600).`);
    eprintln("Agents and the CLI on this machine read it from there; elsewhere, copy the file and");
    eprintln(`pass --token-file FILE (or set SLOTH_RUNNER_TOKEN). Show it with: cat ${file}`);
  }
  return t.token;
}

/** Starts a master in the foreground until SIGINT or SIGTERM. */
export async function runMaster(argv: StartArgs): Promise<void> {
  const { createMaster } = await import("@sloth/master");
  const {
    ensureTokenFile,
    readTokenFile,
    isLoopbackHost,
    parseDuration,
    loadTls,
    SlothError,
    tokenFileWarning,
  } = await import("@sloth/client");
  const tls = loadTls({ cert: argv.tlsCert, key: argv.tlsKey, ca: argv.tlsCa });
  if (tls && (!tls.cert || !tls.key)) {
    throw new SlothError("SLOTH_TLS", "--tls-ca needs --tls-cert and --tls-key on the master", {
      hint: "issue the master a certificate with `sloth-runner ca issue master --san ADDRESS`",
    });
  }
  const dir = await dataDirOf(argv, true);
  if (!Number.isInteger(argv.port) || argv.port < 0 || argv.port > 65535) {
    throw new CliError(`invalid port '${argv.port}'`, {
      hint: "use a port from 1 to 65535",
      exitCode: 2,
    });
  }
  if (argv.daemon) {
    const { startDaemon, argsWithoutDaemon } = await import("../daemon.js");
    // Create the token before forking, so the operator sees where it is.
    if (!argv.tokenFile && !process.env.SLOTH_RUNNER_TOKEN?.trim())
      announceToken(dir.master.token, ensureTokenFile);
    const { pid, address } = await startDaemon({
      args: argsWithoutDaemon(),
      logFile: dir.master.log,
      pidFile: dir.master.pid,
      what: "master",
    });
    println(`Master started in the background (pid ${pid}), listening on ${address}`);
    println(`Log: ${dir.master.log}; stop it with \`sloth-runner master stop\``);
    const { isLoopbackHost } = await import("@sloth/client");
    if (!argv.tlsCert && !isLoopbackHost(argv.bind))
      eprintln(
        painter(process.stderr).yellow(
          `warning: listening on ${argv.bind} without TLS: tokens and output cross the network in clear text`,
        ),
      );
    return;
  }
  const { claimPidFile, releasePidFile } = await import("@sloth/client");
  claimPidFile(dir.master.pid, process.pid, "master");
  process.once("exit", () => releasePidFile(dir.master.pid, process.pid));
  let token: string;
  if (argv.tokenFile) token = readTokenFile(argv.tokenFile);
  else if (process.env.SLOTH_RUNNER_TOKEN?.trim()) token = process.env.SLOTH_RUNNER_TOKEN.trim();
  else token = announceToken(dir.master.token, ensureTokenFile);
  const log = await daemonLogger(argv.logFormat, argv.debug);
  const tokenWarning = tokenFileWarning(argv.tokenFile ?? dir.master.token);
  if (tokenWarning && (argv.tokenFile || !process.env.SLOTH_RUNNER_TOKEN?.trim())) {
    if (log) log.warn({}, tokenWarning);
    else eprintln(painter(process.stderr).yellow(`warning: ${tokenWarning}`));
  }
  const master = createMaster({
    registryPath: dir.master.registryDb,
    statePath: dir.master.stateDb,
    token,
    port: argv.port,
    bind: argv.bind,
    heartbeatIntervalMs: parseDuration(argv.heartbeatInterval),
    agentTtlMs: parseDuration(argv.agentTtl),
    agentGraceMs: parseDuration(argv.agentGrace),
    shutdownTimeoutMs: parseDuration(argv.shutdownTimeout),
    tls: tls?.cert && tls.key ? { cert: tls.cert, key: tls.key, ca: tls.ca } : undefined,
    agentTls: tls,
    logger: log,
  });
  let listening: { address: string; port: number };
  try {
    listening = await master.listen();
  } catch (e) {
    await master.stop();
    // The library names its option; here the flag is what to change.
    if (e instanceof SlothError && e.code === "SLOTH_PORT_IN_USE")
      throw new SlothError(e.code, e.message, {
        hint: "stop the other process or choose another port with --port",
        cause: e,
      });
    throw e;
  }
  if (!tls && !isLoopbackHost(argv.bind)) {
    log.warn(
      { bind: argv.bind },
      "listening on a non-loopback address without TLS: tokens and output cross the network in clear text",
    );
  }
  if ((argv.logFormat ?? (isDaemonChild() ? "json" : "text")) === "text") {
    eprintln(`Master listening on ${listening.address} (data dir ${dir.root})`);
  }
  notifyParent({ type: "ready", address: listening.address });
  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) {
        eprintln(`Received ${sig} again: exiting now`);
        process.exit(130);
      }
      stopping = true;
      log.info({ signal: sig }, "shutting down");
      void master.stop().then(resolve);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}

/** `sloth-runner master stop`: stops the master started from this data dir (its pid file). */
export const stopCommand: CommandModule<GlobalArgs, GlobalArgs & { timeout?: string }> = {
  command: "stop",
  describe: "Stop the master running from this data dir (SIGTERM, then SIGKILL after --timeout)",
  builder: (y) =>
    y.option("timeout", {
      type: "string",
      default: "10s",
      describe:
        "SIGKILL after this long; give the master's --shutdown-timeout (default 30s) plus a little to let its runs finish",
    }) as unknown as Argv<GlobalArgs & { timeout?: string }>,
  handler: async (argv) => {
    const { stopPidFile, parseDuration } = await import("@sloth/client");
    const dir = await dataDirOf(argv);
    const graceMs = parseDuration(argv.timeout ?? "10s", "s");
    const r = await stopPidFile(dir.master.pid, graceMs);
    if (r.outcome === "not-running") {
      throw new CliError("no master is running from this data dir", {
        hint: `there is no ${dir.master.pid}`,
      });
    }
    if (r.outcome === "stale") {
      throw new CliError(`no master is running (removed a stale pid file naming pid ${r.pid})`);
    }
    println(
      r.outcome === "stopped"
        ? `Master stopped (pid ${r.pid})`
        : `Master killed after ${argv.timeout ?? "10s"} (pid ${r.pid})`,
    );
  },
};

/** `sloth-runner master install-service`: a systemd unit running `master start` with these flags. */
export const installServiceCommand: CommandModule<
  GlobalArgs,
  StartArgs & { print?: boolean; unitDir: string; user: string }
> = {
  command: "install-service",
  describe: "Write a systemd unit that runs this master (`--print` shows it)",
  builder: (y) =>
    startOptions(y)
      .option("print", { type: "boolean", describe: "Print the unit instead of writing it" })
      .option("unit-dir", {
        type: "string",
        default: "/etc/systemd/system",
        describe: "Where to write the unit",
      })
      .option("user", {
        type: "string",
        default: "root",
        describe: "User the service runs as",
      }) as unknown as Argv<StartArgs & { print?: boolean; unitDir: string; user: string }>,
  handler: async (argv) => {
    const { serviceArgs, serviceUnitFor, writeServiceUnit } = await import("@sloth/client");
    const raw = process.argv.slice(2);
    const at = raw.indexOf("install-service");
    const globalArgs = raw.slice(0, Math.max(0, raw.indexOf("master")));
    const unit = serviceUnitFor({
      unitName: "sloth-runner-master",
      description: "Sloth Runner Master",
      script: process.argv[1] ?? "sloth-runner",
      args: [
        ...serviceArgs(globalArgs, [], {}),
        "master",
        "start",
        ...serviceArgs(
          raw.slice(at + 1),
          [],
          globalArgs.some((a) => a.startsWith("--data-dir")) ? {} : process.env,
          (m) => process.stderr.write(`warning: ${m}\n`),
        ),
      ],
      user: argv.user,
    });
    if (argv.print) {
      process.stdout.write(unit);
      return;
    }
    const file = writeServiceUnit(argv.unitDir, "sloth-runner-master", unit);
    println(`Wrote ${file}`);
    println(
      "Enable it with: systemctl daemon-reload && systemctl enable --now sloth-runner-master",
    );
  },
};

/** `sloth-runner master start`. */
export const startCommand: CommandModule<GlobalArgs, StartArgs> = {
  command: "start",
  describe: "Start the master server in the foreground",
  builder: (y) => startOptions(y),
  handler: (argv) => runMaster(argv),
};
