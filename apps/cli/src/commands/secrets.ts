import fs from "node:fs";
import type { SecretInfo, SecretsStore } from "@sloth/secrets";
import type { Argv, CommandModule } from "yargs";
import { CliError, dataDirOf, type GlobalArgs, rawFlagValue } from "../context.js";
import {
  eprintln,
  formatLocalTime,
  painter,
  printJson,
  println,
  table,
  terminalSafe,
} from "../output.js";
import { confirm } from "../prompt.js";

interface SecretsArgs extends GlobalArgs {
  env?: string;
  json?: boolean;
}
type NameArgs = SecretsArgs & { name: string };

/** The variable giving the passphrase a rotation seals with (instead of a new key file). */
const NEW_KEY_ENV = "SLOTH_RUNNER_SECRETS_NEW_KEY";

const envOf = (argv: SecretsArgs) =>
  argv.env ?? (process.env.SLOTH_RUNNER_SECRETS_ENV || "default");

// @sloth/secrets loads better-sqlite3 and drizzle: only when a secrets command runs.
async function withStore<T>(
  argv: SecretsArgs,
  create: boolean,
  fn: (s: SecretsStore) => T | Promise<T>,
): Promise<T> {
  const dataDir = await dataDirOf(argv, create);
  if (!create && !fs.existsSync(dataDir.secretsDb))
    throw new CliError("no secret has been set yet", {
      hint: "add one with `sloth-runner secrets set NAME` (the value is read from standard input or a prompt)",
    });
  const { openSecretsStore } = await import("@sloth/secrets");
  const { secretsKeyOf, keyFileWarning } = await import("../run/secrets.js");
  const warning = keyFileWarning(dataDir);
  if (warning) eprintln(`warning: ${warning}`);
  const s = openSecretsStore({ path: dataDir.secretsDb, key: secretsKeyOf(dataDir) });
  try {
    return await fn(s);
  } finally {
    s.close();
  }
}

const infoJson = (i: SecretInfo) => ({
  env: i.env,
  name: i.name,
  version: i.version,
  versions: i.versions,
  updatedAt: i.updatedAt.toISOString(),
  updatedBy: i.updatedBy,
});

const withName = (y: Argv<SecretsArgs>) =>
  y.positional("name", {
    type: "string",
    demandOption: true,
    describe: "Secret name",
  }) as unknown as Argv<NameArgs>;

/**
 * The value to store: standard input when it is not a terminal (one final
 * newline dropped, as `echo` adds it), else typed at a prompt that does not
 * echo it.
 */
async function readValue(name: string, fromFile: string | undefined): Promise<string> {
  const text = (bytes: Buffer, from: string): string => {
    const s = bytes.toString("utf8");
    if (!Buffer.from(s, "utf8").equals(bytes))
      throw new CliError(`the value given on ${from} is not UTF-8 text`, {
        hint: `store binary data encoded, as in: base64 -w0 FILE | sloth-runner secrets set ${name}`,
        exitCode: 2,
      });
    return s;
  };
  if (fromFile !== undefined) {
    try {
      return text(fs.readFileSync(fromFile), fromFile);
    } catch (e) {
      if (e instanceof CliError) throw e;
      throw new CliError(
        `cannot read ${fromFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        {
          hint: "give a readable file to --from-file",
        },
      );
    }
  }
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return text(Buffer.concat(chunks), "standard input").replace(/\r?\n$/, "");
  }
  return promptHidden(`Value of secret '${name}' (not shown): `);
}

/** Reads a line from the terminal without echoing it. */
function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    let text = "";
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding("utf8");
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off("data", onData);
      process.stderr.write("\n");
      if (err) reject(err);
      else resolve(text);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === "\r" || ch === "\n") return done();
        if (ch === "\u0003") return done(new CliError("cancelled", { exitCode: 130 }));
        if (ch === "\u0004") return done();
        if (ch === "\u007f" || ch === "\b") text = text.slice(0, -1);
        else if (ch >= " ") text += ch;
      }
    };
    stdin.on("data", onData);
  });
}

const set: CommandModule<SecretsArgs, NameArgs & { value?: string; fromFile?: string }> = {
  command: "set <name> [value]",
  describe: "Store a secret (a new version): the value comes from standard input or a prompt",
  builder: (y) =>
    withName(y).positional("value", { type: "string", hidden: true }).option("from-file", {
      type: "string",
      describe: "Read the value from this file (as it is, newlines included)",
    }) as unknown as Argv<NameArgs & { value?: string; fromFile?: string }>,
  handler: async (argv) => {
    if (argv.value !== undefined)
      throw new CliError(
        "a secret's value is not taken on the command line: other users see it in the process list and it stays in your shell history",
        {
          hint: `pipe it in (printf %s "$VALUE" | sloth-runner secrets set ${argv.name}), type it at the prompt, or use --from-file FILE`,
          exitCode: 2,
        },
      );
    const value = await readValue(argv.name, argv.fromFile);
    const info = await withStore(argv, true, (s) => s.set(argv.name, value, { env: envOf(argv) }));
    if (argv.json) return printJson(infoJson(info));
    println(`Secret '${info.name}' set in environment '${info.env}' (version ${info.version})`);
    if (value.trim().length < 4)
      println("note: values shorter than 4 characters are not masked in run output");
  },
};

const get: CommandModule<SecretsArgs, NameArgs & { atVersion?: number }> = {
  command: "get <name>",
  describe: "Print a secret's value (the reading is recorded in the audit trail)",
  builder: (y) =>
    withName(y).option("at-version", {
      type: "number",
      describe: "An earlier version (`secrets list` shows the current one)",
    }) as unknown as Argv<NameArgs & { atVersion?: number }>,
  handler: async (argv) => {
    const version = argv.atVersion;
    if (version !== undefined && (!Number.isInteger(version) || version < 1))
      throw new CliError(`invalid --at-version ${rawFlagValue("--at-version") ?? version}`, {
        hint: "give a version number from `sloth-runner secrets list`",
        exitCode: 2,
      });
    const value = await withStore(argv, false, (s) =>
      s.get(argv.name, { env: envOf(argv), version }),
    );
    if (argv.json) return printJson({ env: envOf(argv), name: argv.name, value });
    // As it is when piped (`$(...)`, files); a terminal gets a newline.
    process.stdout.write(process.stdout.isTTY ? `${value}\n` : value);
  },
};

const list: CommandModule<SecretsArgs, SecretsArgs & { allEnvs?: boolean }> = {
  command: ["list", "ls"],
  describe: "List secrets (names, versions, who set them; never values)",
  builder: (y) =>
    y.option("all-envs", {
      type: "boolean",
      describe: "Every environment, not only --env",
    }) as unknown as Argv<SecretsArgs & { allEnvs?: boolean }>,
  handler: async (argv) => {
    const dataDir = await dataDirOf(argv);
    const env = argv.allEnvs ? undefined : envOf(argv);
    const items = fs.existsSync(dataDir.secretsDb)
      ? await withStore(argv, false, (s) => s.list(env))
      : [];
    if (argv.json) return printJson(items.map(infoJson));
    if (items.length === 0)
      return println(env === undefined ? "No secrets" : `No secrets in environment '${env}'`);
    const c = painter(process.stdout);
    const rows = [["ENV", "NAME", "VERSION", "UPDATED", "BY"].map((h) => c.bold(h))];
    for (const i of items)
      rows.push([
        i.env,
        i.name,
        String(i.version),
        formatLocalTime(i.updatedAt),
        terminalSafe(i.updatedBy),
      ]);
    println(table(rows));
  },
};

const del: CommandModule<SecretsArgs, NameArgs & { yes?: boolean }> = {
  command: ["delete <name>", "rm <name>"],
  describe: "Delete a secret and all its versions (asks for confirmation)",
  builder: (y) =>
    withName(y).option("yes", {
      alias: "y",
      type: "boolean",
      describe: "Do not ask for confirmation",
    }) as unknown as Argv<NameArgs & { yes?: boolean }>,
  handler: async (argv) => {
    const env = envOf(argv);
    await withStore(argv, false, async (s) => {
      // Named before asking: a typo is told, not confirmed.
      if (!s.list(env).some((i) => i.name === argv.name)) s.delete(argv.name, { env });
      if (!argv.yes) {
        if (!process.stdin.isTTY)
          throw new CliError(`refusing to delete secret '${argv.name}' without confirmation`, {
            hint: "pass --yes to confirm when not on a terminal",
          });
        if (
          !(await confirm(
            `Delete secret '${argv.name}' of environment '${env}' and all its versions? [y/N] `,
          ))
        ) {
          println("Cancelled");
          return;
        }
      }
      s.delete(argv.name, { env });
      if (argv.json) printJson({ env, name: argv.name, deleted: true });
      else println(`Secret '${argv.name}' deleted from environment '${env}'`);
    });
  },
};

const audit: CommandModule<SecretsArgs, SecretsArgs & { name?: string; limit: number }> = {
  command: "audit",
  describe: "Show who set, read, used or deleted secrets, and when (newest first)",
  builder: (y) =>
    y.option("name", { type: "string", describe: "Only this secret" }).option("limit", {
      type: "number",
      default: 50,
      describe: "At most this many lines",
    }) as unknown as Argv<SecretsArgs & { name?: string; limit: number }>,
  handler: async (argv) => {
    if (!Number.isInteger(argv.limit) || argv.limit < 1)
      throw new CliError(`invalid --limit ${argv.limit}`, {
        hint: "give a positive number",
        exitCode: 2,
      });
    const dataDir = await dataDirOf(argv);
    const entries = fs.existsSync(dataDir.secretsDb)
      ? await withStore(argv, false, (s) =>
          s.audit({ env: argv.env, name: argv.name, limit: argv.limit }),
        )
      : [];
    if (argv.json) return printJson(entries.map((e) => ({ ...e, at: e.at.toISOString() })));
    if (entries.length === 0) return println("No audit entries");
    const c = painter(process.stdout);
    const rows = [
      ["WHEN", "ACTION", "ENV", "NAME", "VERSION", "BY", "DETAIL"].map((h) => c.bold(h)),
    ];
    for (const e of entries)
      rows.push([
        formatLocalTime(e.at),
        e.action,
        e.env ?? "-",
        e.name ?? "-",
        e.version === undefined ? "-" : String(e.version),
        terminalSafe(`${e.actor} (pid ${e.pid})`),
        terminalSafe(e.detail),
      ]);
    println(table(rows));
  },
};

const rotate: CommandModule<SecretsArgs, SecretsArgs> = {
  command: "rotate-key",
  describe: `Seal every secret again under a new key (a new key file, or the passphrase in $${NEW_KEY_ENV})`,
  handler: async (argv) => {
    const dataDir = await dataDirOf(argv);
    const passphrase = process.env[NEW_KEY_ENV];
    const next = passphrase ? { passphrase } : { file: dataDir.secretsKey };
    const count = await withStore(argv, false, (s) => s.rotateKey(next));
    if (argv.json)
      return printJson({ sealed: count, key: passphrase ? "passphrase" : dataDir.secretsKey });
    println(
      passphrase
        ? `${count} secret value(s) sealed again under the new passphrase: set SLOTH_RUNNER_SECRETS_KEY to it from now on`
        : `${count} secret value(s) sealed again under a new key in ${dataDir.secretsKey}; back that file up (the old key no longer opens them)${process.env.SLOTH_RUNNER_SECRETS_KEY ? ", and unset SLOTH_RUNNER_SECRETS_KEY: the key file is used only without it" : ""}`,
    );
  },
};

/** `sloth-runner secrets ...`: encrypted secrets for workflows (`secrets.get` in Lua). */
export const secretsCommand: CommandModule<GlobalArgs, SecretsArgs> = {
  command: "secrets <command>",
  describe: "Encrypted secrets for workflows: set, get, list, delete, audit, rotate-key",
  builder: (y) =>
    y
      .option("env", {
        type: "string",
        describe: "Environment of the secrets (default: $SLOTH_RUNNER_SECRETS_ENV, else default)",
      })
      .option("json", { type: "boolean", describe: "Print JSON" })
      .command(set)
      .command(get)
      .command(list)
      .command(del)
      .command(audit)
      .command(rotate)
      .demandCommand(1, "missing secrets command") as unknown as Argv<SecretsArgs>,
  handler: () => {},
};
