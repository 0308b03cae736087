import { loadTls, resolveDataDir, resolveMaster, resolveToken, SlothError } from "@sloth/client";
import { type Agent, type AgentOptions, createAgent } from "./agent.js";
import { parseLabels, validatePort } from "./options.js";

/**
 * The flags of `sloth-agentd` and `sloth-runner agent start`, as yargs
 * option specs, so both commands accept exactly the same flags.
 */
export const agentStartFlags = {
  name: { type: "string", describe: "Agent name (default: host name)" },
  master: {
    type: "string",
    describe:
      "Master HOST:PORT or a name from `sloth-runner master list` (default: SLOTH_RUNNER_MASTER_ADDR, the default master, localhost:50053)",
  },
  port: { alias: "p", type: "number", describe: "Port to listen on", default: 50051 },
  "bind-address": { type: "string", describe: "Address to listen on", default: "0.0.0.0" },
  "report-address": {
    type: "string",
    describe: "HOST:PORT the master should dial (behind NAT or port forwarding)",
  },
  label: {
    type: "string",
    array: true,
    describe: "Label KEY=VALUE reported to the master (repeatable)",
  },
  "token-file": {
    type: "string",
    describe:
      "File holding the cluster token (default: SLOTH_RUNNER_TOKEN, else <data dir>/master/token)",
  },
  "tls-cert": {
    type: "string",
    describe:
      "Serve TLS with this certificate (PEM); also the client certificate towards the master",
  },
  "tls-key": { type: "string", describe: "Private key of --tls-cert (PEM)" },
  "tls-ca": {
    type: "string",
    describe:
      "CA certificate (PEM): verifies the master and requires callers to present certificates it signed (mTLS)",
  },
  "metrics-port": { type: "number", describe: "Serve Prometheus /metrics over HTTP on this port" },
  "keep-workspaces": {
    type: "number",
    describe:
      "Finished delegated-task workspaces kept to recycle for the next task (default 2; 0 deletes each after its task)",
  },
  "cache-limit": {
    type: "string",
    describe:
      "Bound of the cache of delegated tasks' files, such as 2G or 500M (default 5G; least recently used first out)",
  },
  "data-dir": {
    type: "string",
    describe: "Data directory (default: SLOTH_RUNNER_DATA_DIR, else ~/.sloth-runner)",
  },
} as const;

/** Parsed values of {@link agentStartFlags} (yargs' camel-case keys). */
export interface AgentStartFlags {
  name?: string | undefined;
  master?: string | undefined;
  port?: number | undefined;
  bindAddress?: string | undefined;
  reportAddress?: string | undefined;
  label?: readonly string[] | undefined;
  tokenFile?: string | undefined;
  dataDir?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  tlsCa?: string | undefined;
  metricsPort?: number | undefined;
  keepWorkspaces?: number | undefined;
  cacheLimit?: string | undefined;
}

/** What the embedding command adds to the flags. */
export type AgentRuntimeOptions = Pick<
  AgentOptions,
  "logger" | "onEvent" | "shutdownGraceMs" | "workdir"
>;

/**
 * Turns parsed flags into createAgent options: master from `--master` >
 * SLOTH_RUNNER_MASTER_ADDR > default master > legacy master.conf >
 * localhost:50053; token from `--token-file` > SLOTH_RUNNER_TOKEN >
 * `<data dir>/master/token`. Throws SlothErrors worded for the command line.
 */
export function agentOptionsFromFlags(
  flags: AgentStartFlags,
  env: NodeJS.ProcessEnv = process.env,
): AgentOptions {
  const dataDir = resolveDataDir(flags.dataDir, env);
  const master = resolveMaster({ flag: flags.master, dataDir, env });
  const port = flags.port ?? 50051;
  if (Number.isNaN(port)) {
    throw new SlothError("SLOTH_INVALID_ARGUMENT", "invalid port: expected a number", {
      hint: "choose another with --port",
    });
  }
  validatePort(port);
  const labels = parseLabels(flags.label ?? []);
  const token = resolveToken({
    tokenFile: flags.tokenFile,
    env,
    masterTokenFile: master.record?.tokenFile,
    dataDirTokenFile: dataDir.master.token,
  });
  if (!token) {
    throw new SlothError("SLOTH_TOKEN_MISSING", "no cluster token found", {
      hint: `pass --token-file FILE or set SLOTH_RUNNER_TOKEN (the master writes it to ${dataDir.master.token})`,
    });
  }
  return {
    masterAddress: master.address,
    token: token.token,
    name: flags.name,
    port,
    bindAddress: flags.bindAddress,
    reportAddress: flags.reportAddress,
    labels,
    dataDir: dataDir.root,
    tls: agentTlsFromFlags(flags),
    metricsPort: flags.metricsPort,
    keepWorkspaces: keepWorkspacesOf(flags.keepWorkspaces),
    cacheLimitBytes: sizeOf(flags.cacheLimit),
  };
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
  T: 1024 ** 4,
};

/** `--cache-limit`: bytes, or a number with K, M, G or T (powers of 1024, optional B/iB). */
function sizeOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (!m)
    throw new SlothError("SLOTH_INVALID_ARGUMENT", `invalid --cache-limit '${text}'`, {
      hint: "use a size such as 2G, 500M or a number of bytes",
    });
  return Math.floor(Number(m[1]) * (SIZE_UNITS[(m[2] ?? "").toUpperCase()] ?? 1));
}

function keepWorkspacesOf(n: number | undefined): number | undefined {
  if (n === undefined) return undefined;
  if (!Number.isInteger(n) || n < 0 || n > 100) {
    throw new SlothError(
      "SLOTH_INVALID_ARGUMENT",
      `invalid --keep-workspaces ${n}: expected a whole number from 0 to 100`,
      { hint: "use 0 to delete each workspace after its task" },
    );
  }
  return n;
}

function agentTlsFromFlags(flags: AgentStartFlags): AgentOptions["tls"] {
  const tls = loadTls({ cert: flags.tlsCert, key: flags.tlsKey, ca: flags.tlsCa });
  if (!tls) return undefined;
  if (!tls.cert || !tls.key) {
    throw new SlothError("SLOTH_TLS", "--tls-ca needs --tls-cert and --tls-key on an agent", {
      hint: "issue the agent a certificate with `sloth-runner ca issue NAME --san ADDRESS`",
    });
  }
  return { cert: tls.cert, key: tls.key, ca: tls.ca };
}

/**
 * Why the token these flags select is not kept safely (a token file other
 * users can read or change), or undefined; for the caller to show.
 */
export function agentTokenWarning(
  flags: AgentStartFlags,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  try {
    const dataDir = resolveDataDir(flags.dataDir, env);
    const master = resolveMaster({ flag: flags.master, dataDir, env });
    return resolveToken({
      tokenFile: flags.tokenFile,
      env,
      masterTokenFile: master.record?.tokenFile,
      dataDirTokenFile: dataDir.master.token,
    })?.warning;
  } catch {
    // Starting reports what is wrong with these flags.
    return undefined;
  }
}

/**
 * Creates and starts an agent from parsed flags: the whole of `sloth-agentd`
 * and `sloth-runner agent start` apart from printing and signals.
 */
export async function startAgentFromFlags(
  flags: AgentStartFlags,
  runtime: AgentRuntimeOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<Agent> {
  const agent = createAgent({ ...agentOptionsFromFlags(flags, env), ...runtime });
  // Read once: the commands and delegated tasks this process runs (and the
  // Lua workers it starts) inherit its environment, and must not see it.
  delete env.SLOTH_RUNNER_TOKEN;
  await agent.start();
  return agent;
}

/**
 * Stops `agent` gracefully on SIGTERM or SIGINT; a second signal kills
 * running commands at once. Returns a function removing the handlers.
 */
export function stopOnSignals(
  agent: Agent,
  signals: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT"],
): () => void {
  let count = 0;
  const handler = () => {
    count++;
    void agent.stop(count > 1 ? { graceMs: 0 } : undefined);
  };
  for (const s of signals) process.on(s, handler);
  return () => {
    for (const s of signals) process.off(s, handler);
  };
}
