import type { Argv, CommandModule } from "yargs";
import { CliError, dataDirOf, type GlobalArgs } from "../context.js";
import { println } from "../output.js";

interface CaArgs extends GlobalArgs {
  dir?: string;
  days?: number;
  force?: boolean;
}

async function caDir(argv: CaArgs): Promise<string> {
  const path = await import("node:path");
  return argv.dir ? path.resolve(argv.dir) : path.join((await dataDirOf(argv, true)).root, "ca");
}

const common = (y: Argv<GlobalArgs>) =>
  y
    .option("dir", { type: "string", describe: "Folder of the CA (default: <data dir>/ca)" })
    .option("days", { type: "number", describe: "Validity in days" })
    .option("force", { type: "boolean", describe: "Replace existing files" });

const init: CommandModule<GlobalArgs, CaArgs> = {
  command: "init",
  describe: "Create a certificate authority for the cluster",
  builder: (y) => common(y) as unknown as Argv<CaArgs>,
  handler: async (argv) => {
    const { createCertificateAuthority, writeCertificatePair } = await import("@sloth/client");
    const path = await import("node:path");
    const dir = await caDir(argv);
    const pair = await createCertificateAuthority({ days: argv.days });
    const files = writeCertificatePair(path.join(dir, "ca"), pair, argv.force);
    println(`Created CA certificate ${files.cert}`);
    println(`         private key    ${files.key} (mode 0600: keep it on this machine)`);
    println(
      "Issue a certificate per master and agent with `sloth-runner ca issue NAME --san ADDRESS`.",
    );
  },
};

const issue: CommandModule<
  GlobalArgs,
  CaArgs & { name: string; san?: string | string[]; out?: string; client?: boolean }
> = {
  command: "issue <name>",
  describe: "Issue a certificate (server and client) signed by the cluster CA",
  builder: (y) =>
    (common(y) as Argv<GlobalArgs>)
      .positional("name", {
        type: "string",
        demandOption: true,
        describe: "Name of the master or agent",
      })
      .option("san", {
        type: "string",
        describe: "Host name or IP address it is reached at (repeatable)",
      })
      .option("out", {
        type: "string",
        describe: "Folder for NAME.crt and NAME.key (default: the CA folder)",
      })
      .option("client", {
        type: "boolean",
        describe: "A client certificate only (the CLI talking to an mTLS master): no --san",
      }) as unknown as Argv<
      CaArgs & { name: string; san?: string | string[]; out?: string; client?: boolean }
    >,
  handler: async (argv) => {
    const { issueCertificate, readCertificatePair, writeCertificatePair } = await import(
      "@sloth/client"
    );
    const path = await import("node:path");
    const fs = await import("node:fs");
    const dir = await caDir(argv);
    if (!fs.existsSync(path.join(dir, "ca.crt"))) {
      throw new CliError(`no CA in ${dir}`, {
        hint: "create one with `sloth-runner ca init` (or point --dir at it)",
      });
    }
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(argv.name)) {
      throw new CliError(`invalid certificate name '${argv.name}'`, {
        hint: "use letters, digits, '.', '_' or '-'",
        exitCode: 2,
      });
    }
    const sans = typeof argv.san === "string" ? [argv.san] : (argv.san ?? []);
    const pair = await issueCertificate({
      ca: readCertificatePair(path.join(dir, "ca")),
      name: argv.name,
      sans,
      days: argv.days,
      client: argv.client === true,
    });
    const out = argv.out ? path.resolve(argv.out) : dir;
    const files = writeCertificatePair(path.join(out, argv.name), pair, argv.force);
    println(`Issued ${files.cert} ${argv.client ? "(client only)" : `for ${sans.join(", ")}`}`);
    println(`       ${files.key} (mode 0600)`);
    println(
      `Use: --tls-cert ${files.cert} --tls-key ${files.key} --tls-ca ${path.join(dir, "ca.crt")}`,
    );
  },
};

/** `sloth-runner ca init|issue`: a small certificate authority for TLS and mTLS. */
export const caCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: "ca",
  describe: "Create a cluster CA and issue certificates for masters and agents",
  builder: (y) =>
    y
      .command(init)
      .command(issue)
      .demandCommand(1, "missing ca command") as unknown as Argv<GlobalArgs>,
  handler: () => {},
};
