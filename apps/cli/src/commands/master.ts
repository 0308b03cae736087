import type { Argv, CommandModule } from "yargs";
import { CliError, dataDirOf, type GlobalArgs } from "../context.js";
import { printJson, println } from "../output.js";
import { confirm } from "../prompt.js";
import {
  installServiceCommand,
  runMaster,
  startCommand,
  startOptions,
  stopCommand,
} from "./master-start.js";
import { masterJson, printMaster, printMasterList } from "./master-view.js";

interface AddArgs extends GlobalArgs {
  name: string;
  address: string;
  description?: string;
  tokenFile?: string;
}

const tlsOptions = {
  "tls-ca": { type: "string", describe: "CA certificate to verify this master (path is stored)" },
  "tls-cert": {
    type: "string",
    describe: "Client certificate for mTLS with this master (path is stored)",
  },
  "tls-key": { type: "string", describe: "Private key of --tls-cert (path is stored)" },
} as const;

async function tlsPaths(argv: GlobalArgs) {
  const path = await import("node:path");
  const abs = (p: string | undefined) =>
    p === undefined ? undefined : p === "" ? "" : path.resolve(p);
  return { ca: abs(argv.tlsCa), cert: abs(argv.tlsCert), key: abs(argv.tlsKey) };
}

async function store(argv: GlobalArgs) {
  const { openMastersStore } = await import("@sloth/client");
  return openMastersStore((await dataDirOf(argv, true)).mastersDb);
}

const tokenFileOption = {
  type: "string",
  describe:
    'Token file to use with this master (its path is stored, never the token; "" removes it)',
} as const;

const add: CommandModule<GlobalArgs, AddArgs> = {
  command: "add <name> <address>",
  describe: "Register a master server under a name",
  builder: (y) =>
    y
      .positional("name", { type: "string", demandOption: true, describe: "Unique name (no ':')" })
      .positional("address", { type: "string", demandOption: true, describe: "HOST:PORT" })
      .option("description", { alias: "d", type: "string", describe: "Description" })
      .option("token-file", tokenFileOption)
      .options(tlsOptions) as unknown as Argv<AddArgs>,
  handler: async (argv) => {
    const s = await store(argv);
    try {
      const m = s.add({
        name: argv.name,
        address: argv.address,
        description: argv.description,
        // "" removes the recorded file.
        tokenFile:
          argv.tokenFile === undefined || argv.tokenFile === ""
            ? argv.tokenFile
            : (await import("node:path")).resolve(argv.tokenFile),
        tls: await tlsPaths(argv),
      });
      println(`Master '${m.name}' added (${m.address})${m.isDefault ? " and set as default" : ""}`);
    } finally {
      s.close();
    }
  },
};

const list: CommandModule<GlobalArgs, GlobalArgs & { json?: boolean }> = {
  command: ["list", "ls"],
  describe: "List registered master servers",
  builder: (y) => y.option("json", { type: "boolean", describe: "Print JSON" }),
  handler: async (argv) => {
    const s = await store(argv);
    try {
      printMasterList(s.list(), argv.json === true);
    } finally {
      s.close();
    }
  },
};

const select: CommandModule<GlobalArgs, GlobalArgs & { name: string }> = {
  command: "select <name>",
  describe: "Make a master the default",
  builder: (y) => y.positional("name", { type: "string", demandOption: true }),
  handler: async (argv) => {
    const s = await store(argv);
    try {
      const m = s.select(argv.name);
      println(`Default master is now '${m.name}' (${m.address})`);
    } finally {
      s.close();
    }
  },
};

const show: CommandModule<GlobalArgs, GlobalArgs & { name?: string; json?: boolean }> = {
  command: "show [name]",
  describe: "Show a master (the default when no name is given)",
  builder: (y) =>
    y
      .positional("name", { type: "string" })
      .option("json", { type: "boolean", describe: "Print JSON" }),
  handler: async (argv) => {
    const s = await store(argv);
    try {
      const m = argv.name ? s.get(argv.name) : s.getDefault();
      if (!m) {
        throw argv.name
          ? new CliError(`master '${argv.name}' not found`, {
              hint: "run `sloth-runner master list`",
            })
          : new CliError("no default master", {
              hint: "add one with `sloth-runner master add NAME HOST:PORT`",
            });
      }
      if (argv.json) return printJson(masterJson(m));
      printMaster(m, true);
    } finally {
      s.close();
    }
  },
};

const update: CommandModule<GlobalArgs, AddArgs> = {
  command: "update <name> [address]",
  describe: "Change a master's address, description, token file or TLS files",
  builder: (y) =>
    y
      .positional("name", { type: "string", demandOption: true })
      .positional("address", { type: "string", describe: "New HOST:PORT" })
      .option("description", { alias: "d", type: "string", describe: "New description" })
      .option("token-file", tokenFileOption)
      .options(tlsOptions) as unknown as Argv<AddArgs>,
  handler: async (argv) => {
    if (
      argv.address === undefined &&
      argv.description === undefined &&
      argv.tokenFile === undefined &&
      argv.tlsCa === undefined &&
      argv.tlsCert === undefined &&
      argv.tlsKey === undefined
    ) {
      throw new CliError("nothing to update", {
        hint: 'give a new address, --description, --token-file or --tls-* ("" removes a file)',
        exitCode: 2,
      });
    }
    const s = await store(argv);
    try {
      const m = s.update(argv.name, {
        address: argv.address,
        description: argv.description,
        // "" removes the recorded file.
        tokenFile:
          argv.tokenFile === undefined || argv.tokenFile === ""
            ? argv.tokenFile
            : (await import("node:path")).resolve(argv.tokenFile),
        tls: await tlsPaths(argv),
      });
      println(`Master '${m.name}' updated (${m.address})`);
    } finally {
      s.close();
    }
  },
};

const remove: CommandModule<GlobalArgs, GlobalArgs & { name: string; yes?: boolean }> = {
  command: "remove <name>",
  aliases: ["rm", "delete"],
  describe: "Remove a master (asks for confirmation)",
  builder: (y) =>
    y
      .positional("name", { type: "string", demandOption: true })
      .option("yes", { alias: "y", type: "boolean", describe: "Do not ask for confirmation" }),
  handler: async (argv) => {
    const s = await store(argv);
    try {
      const m = s.get(argv.name);
      if (!m)
        throw new CliError(`master '${argv.name}' not found`, {
          hint: "run `sloth-runner master list`",
        });
      const others = s.list().length - 1;
      if (m.isDefault && others > 0) {
        throw new CliError(
          `cannot delete default master '${m.name}'. Select a different default first`,
          {
            hint: "run `sloth-runner master select OTHER`",
          },
        );
      }
      if (!argv.yes) {
        if (!process.stdin.isTTY) {
          throw new CliError(`refusing to remove master '${m.name}' without confirmation`, {
            hint: "pass --yes to confirm when not on a terminal",
          });
        }
        if (!(await confirm(`Remove master '${m.name}' (${m.address})? [y/N] `))) {
          println("Cancelled");
          return;
        }
      }
      s.remove(m.name);
      println(`Master '${m.name}' removed`);
    } finally {
      s.close();
    }
  },
};

/** `sloth-runner master ...`: named masters, and `master start`. */
export const masterCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: "master",
  describe: "Manage master servers, or start one (`master start`, `master -p PORT`)",
  builder: (y) =>
    y
      .command(add)
      .command(list)
      .command(select)
      .command(show)
      .command(update)
      .command(remove)
      .command(startCommand)
      .command(stopCommand)
      .command(installServiceCommand)
      // Bare `master [options]`: the start options belong to it alone, so
      // `master list --help` does not offer --port or --daemon.
      .command({
        command: "$0",
        describe: false,
        builder: (b) => startOptions(b),
        handler: (argv) => runMaster(argv as unknown as Parameters<typeof runMaster>[0]),
      }) as unknown as Argv<GlobalArgs>,
  handler: () => {},
};
