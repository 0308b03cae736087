import type { Argv } from "yargs";
import type { GlobalArgs } from "./context.js";

/** Adds `--master` and `--token-file` to a command that talks to a master. */
export function withMasterOptions<T>(y: Argv<T>): Argv<T & GlobalArgs> {
  return y
    .option("master", {
      type: "string",
      describe:
        "Master name or HOST:PORT (default: $SLOTH_RUNNER_MASTER_ADDR, the selected master, localhost:50053)",
    })
    .option("token-file", {
      type: "string",
      describe:
        "Cluster token file (default: $SLOTH_RUNNER_TOKEN, the master's recorded file, <data dir>/master/token)",
    })
    .option("tls-ca", {
      type: "string",
      describe: "CA certificate that verifies the master (default: the one recorded for it)",
    })
    .option("tls-cert", {
      type: "string",
      describe: "Client certificate for a master that requires mTLS",
    })
    .option("tls-key", {
      type: "string",
      describe: "Private key of --tls-cert",
    }) as unknown as Argv<T & GlobalArgs>;
}
