import type { Client } from "@connectrpc/connect";
import type {
  DataDir,
  ResolvedMaster,
  ResolvedToken,
  SlothConnection,
  SlothError,
  TlsMaterial,
} from "@sloth/client";
import type { MasterService } from "@sloth/proto";
import { eprintln, painter } from "./output.js";

// @sloth/client pulls in Connect, protobuf and SQLite: load it only when a
// command needs it, so `--version` and `--help` start fast.
const client = () => import("@sloth/client");

/** Options every command accepts. */
export interface GlobalArgs {
  dataDir?: string | undefined;
  master?: string | undefined;
  tokenFile?: string | undefined;
  debug?: boolean | undefined;
  tlsCa?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
}

/**
 * A user-facing failure: one line (message, then the fix) on stderr and a
 * non-zero exit code. Throw it from command handlers.
 */
export class CliError extends Error {
  readonly hint: string | undefined;
  readonly exitCode: number;
  constructor(
    message: string,
    options: { hint?: string; exitCode?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CliError";
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? 1;
  }
}

/** Thrown to end a command with an exit code and no message (output was already written). */
export class ExitCode extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** The data directory for these arguments; created (0700) when `create` is set. */
export async function dataDirOf(argv: GlobalArgs, create = false): Promise<DataDir> {
  // The light entry: local commands (state, runs, stack) skip the RPC stack.
  const { resolveDataDir, ensurePrivateDir } = await import("@sloth/client/light");
  const dir = resolveDataDir(argv.dataDir);
  if (create) ensurePrivateDir(dir.root);
  return dir;
}

/** The master these arguments select (see `resolveMaster`). */
export async function masterOf(argv: GlobalArgs): Promise<ResolvedMaster> {
  const { resolveMaster } = await client();
  return resolveMaster({ flag: argv.master, dataDir: await dataDirOf(argv) });
}

/** The token for talking to `master`; undefined when none is configured. */
export async function tokenFor(
  argv: GlobalArgs,
  master: ResolvedMaster,
): Promise<ResolvedToken | undefined> {
  const { resolveToken, assertClusterToken } = await client();
  const token = resolveToken({
    tokenFile: argv.tokenFile,
    masterTokenFile: master.record?.tokenFile,
    dataDirTokenFile: (await dataDirOf(argv)).master.token,
  });
  if (token) assertClusterToken(token);
  if (token?.warning && !warnedTokenFiles.has(token.warning)) {
    warnedTokenFiles.add(token.warning);
    eprintln(painter(process.stderr).yellow(`warning: ${token.warning}`));
  }
  return token;
}

/** Token file warnings already shown by this process. */
const warnedTokenFiles = new Set<string>();

/** TLS material from --tls-* flags, else recorded for the selected master; undefined for plaintext. */
export async function tlsFor(
  argv: GlobalArgs,
  master: ResolvedMaster,
): Promise<TlsMaterial | undefined> {
  const { loadTls } = await client();
  const rec = master.record?.tls;
  return loadTls({
    ca: argv.tlsCa ?? rec?.ca,
    cert: argv.tlsCert ?? rec?.cert,
    key: argv.tlsKey ?? (argv.tlsCert ? undefined : rec?.key),
  });
}

/** A connected master client for one command. */
export interface MasterSession {
  master: ResolvedMaster;
  conn: SlothConnection;
  client: Client<typeof MasterService>;
  /** Maps any error of a call to a SlothError naming the master. */
  fail(e: unknown): SlothError;
}

/**
 * Connects to the selected master with its token, runs `fn`, and closes the
 * connection. Errors of calls are mapped to messages naming the master.
 */
export async function withMaster<T>(
  argv: GlobalArgs,
  fn: (s: MasterSession) => Promise<T>,
): Promise<T> {
  const { connect, masterClient, fromConnectError, explainClosedConnection } = await client();
  const master = await masterOf(argv);
  const token = await tokenFor(argv, master);
  if (!token) {
    throw new CliError(`no cluster token for master at ${master.address}`, {
      hint: "pass --token-file FILE or set SLOTH_RUNNER_TOKEN (a local master keeps it in <data dir>/master/token)",
    });
  }
  const tls = await tlsFor(argv, master);
  const conn = connect({ address: master.address, token: token.token, tls });
  const fail = (e: unknown) =>
    fromConnectError(e, { kind: "master", address: master.address, name: master.record?.name });
  try {
    return await fn({ master, conn, client: masterClient(conn), fail });
  } catch (e) {
    if (e instanceof CliError || e instanceof ExitCode) throw e;
    const err = fail(e);
    // Dropped without an answer: a master serving TLS does that to cleartext.
    if (tls) throw err;
    throw await explainClosedConnection(err, { kind: "master", address: master.address });
  } finally {
    conn.close();
  }
}

/** Parses repeated `K=V` options into a record; rejects entries without '='. */
export function parseKeyValues(
  values: string | readonly string[] | undefined,
  flag: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of typeof values === "string" ? [values] : (values ?? [])) {
    const eq = item.indexOf("=");
    if (eq <= 0) {
      throw new CliError(`invalid ${flag} '${item}': expected KEY=VALUE`, {
        hint: `write it as ${flag} key=value`,
      });
    }
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** The text given after `flag` on the command line (`--flag V` or `--flag=V`). */
export function rawFlagValue(flag: string): string | undefined {
  const args = process.argv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === flag) return args[i + 1];
    if (a.startsWith(`${flag}=`)) return a.slice(flag.length + 1);
  }
  return undefined;
}
