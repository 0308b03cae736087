import type { Argv, CommandModule } from "yargs";
import { CliError, dataDirOf, type GlobalArgs } from "../context.js";
import { lineLogger } from "../logger.js";
import { eprintln } from "../output.js";

interface StartArgs extends GlobalArgs {
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
    .option("bind", { type: "string", default: "0.0.0.0", describe: "Address to bind" })
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

/** Starts a master in the foreground until SIGINT or SIGTERM. */
export async function runMaster(argv: StartArgs): Promise<void> {
  const { createMaster } = await import("@sloth/master");
  const { ensureTokenFile, readTokenFile, isLoopbackHost, parseDuration, loadTls, SlothError } =
    await import("@sloth/client");
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
  let token: string;
  if (argv.tokenFile) token = readTokenFile(argv.tokenFile);
  else if (process.env.SLOTH_RUNNER_TOKEN?.trim()) token = process.env.SLOTH_RUNNER_TOKEN.trim();
  else {
    const t = ensureTokenFile(dir.master.token);
    token = t.token;
    if (t.created) {
      eprintln(`Created the cluster token in ${dir.master.token} (mode 0600).`);
      eprintln(
        `Agents and the CLI on this machine read it from there; elsewhere, copy the file and`,
      );
      eprintln(
        `pass --token-file FILE (or set SLOTH_RUNNER_TOKEN). Show it with: cat ${dir.master.token}`,
      );
    }
  }
  const log = lineLogger(argv.debug);
  const master = createMaster({
    registryPath: dir.master.registryDb,
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
    throw e;
  }
  if (!tls && !isLoopbackHost(argv.bind)) {
    log.warn(
      { bind: argv.bind },
      "listening on a non-loopback address without TLS: tokens and output cross the network in clear text",
    );
  }
  eprintln(`Master listening on ${listening.address} (data dir ${dir.root})`);
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

/** `sloth-runner master start`. */
export const startCommand: CommandModule<GlobalArgs, StartArgs> = {
  command: "start",
  describe: "Start the master server in the foreground",
  builder: (y) => startOptions(y),
  handler: (argv) => runMaster(argv),
};
