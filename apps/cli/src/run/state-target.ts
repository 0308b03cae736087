import type { DataDir } from "@sloth/client";
import type { StateTarget } from "@sloth/dsl-lua";
import { CliError, type GlobalArgs, masterOf, tlsFor, tokenFor } from "../context.js";

const pem = (v: string | Buffer | undefined) => (v === undefined ? undefined : String(v));

/**
 * The store of the Lua `state` module for a run: the master's when the run
 * names one with --master, or delegates tasks through the master (`shared`),
 * so that every task, local or delegated, shares its keys and locks; else
 * `<data dir>/state.db`.
 */
export async function stateTargetOf(
  argv: GlobalArgs,
  dataDir: DataDir,
  shared = false,
): Promise<StateTarget> {
  if (argv.master === undefined && !shared) return { path: dataDir.stateDb };
  const master = await masterOf(argv);
  const token = await tokenFor(argv, master);
  if (!token) {
    // Shared because tasks are delegated: say it as delegation does.
    throw new CliError(
      argv.master === undefined && shared
        ? "delegated tasks need the cluster token"
        : `no cluster token for master at ${master.address}`,
      {
        hint: "pass --token-file FILE or set SLOTH_RUNNER_TOKEN (a local master keeps it in <data dir>/master/token)",
      },
    );
  }
  const tls = await tlsFor(argv, master);
  return {
    master: master.address,
    token: token.token,
    // PEM text: the target crosses into Lua worker threads by structured clone.
    tls: tls && { ca: pem(tls.ca), cert: pem(tls.cert), key: pem(tls.key) },
  };
}
