import type { StateEntry, StateStore } from "@sloth/state";
import type { Argv, CommandModule } from "yargs";
import {
  CliError,
  dataDirOf,
  ExitCode,
  type GlobalArgs,
  masterOf,
  tlsFor,
  tokenFor,
} from "../context.js";
import { withMasterOptions } from "../master-options.js";
import { eprintln, formatLocalTime, painter, printJson, println, table } from "../output.js";

interface StateArgs extends GlobalArgs {
  namespace: string;
  json?: boolean;
}
type KeyArgs = StateArgs & { key: string };
type NameArgs = StateArgs & { name: string };

/** Exit code of `state lock` when the lease is lost while the command runs (EX_TEMPFAIL). */
const LEASE_LOST_EXIT = 75;

// @sloth/state loads better-sqlite3 and drizzle: only when a state command runs.
async function open(argv: StateArgs): Promise<StateStore> {
  if (argv.master !== undefined) return openRemote(argv);
  const { openState } = await import("@sloth/state");
  return openState({ path: (await dataDirOf(argv, true)).stateDb, namespace: argv.namespace });
}

/** Only an explicit --master selects the master's store: the local file stays the default. */
async function openRemote(argv: StateArgs): Promise<StateStore> {
  const master = await masterOf(argv);
  const token = await tokenFor(argv, master);
  if (!token) {
    throw new CliError(`no cluster token for master at ${master.address}`, {
      hint: "pass --token-file FILE or set SLOTH_RUNNER_TOKEN (a local master keeps it in <data dir>/master/token)",
    });
  }
  const { connectState } = await import("@sloth/state");
  return connectState({
    master: master.address,
    token: token.token,
    tls: await tlsFor(argv, master),
    namespace: argv.namespace,
  });
}

async function withStore<T>(argv: StateArgs, fn: (s: StateStore) => Promise<T>): Promise<T> {
  const s = await open(argv);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

const notFound = (key: string, ns: string) =>
  new CliError(`key '${key}' not found in namespace '${ns}'`, {
    hint: `run \`sloth-runner state list --namespace ${ns}\` to see its keys`,
  });

const show = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

function entryJson(ns: string, e: StateEntry) {
  return {
    namespace: ns,
    key: e.key,
    value: e.value,
    createdAt: e.createdAt.toISOString(),
    updatedAt: e.updatedAt.toISOString(),
    expiresAt: e.expiresAt?.toISOString() ?? null,
  };
}

const keyPositional = (y: Argv<StateArgs>) =>
  y.positional("key", { type: "string", demandOption: true }) as unknown as Argv<KeyArgs>;
const namePositional = (y: Argv<StateArgs>) =>
  y.positional("name", {
    type: "string",
    demandOption: true,
    describe: "Lock name",
  }) as unknown as Argv<NameArgs>;

const get: CommandModule<StateArgs, KeyArgs> = {
  command: "get <key>",
  describe: "Print a value (strings as they are, anything else as JSON)",
  builder: keyPositional,
  handler: (argv) =>
    withStore(argv, async (s) => {
      const e = await s.getEntry(argv.key);
      if (!e) throw notFound(argv.key, s.namespace);
      println(argv.json ? JSON.stringify(entryJson(s.namespace, e), null, 2) : show(e.value));
    }),
};

const set: CommandModule<
  StateArgs,
  KeyArgs & { value: string; ttl?: string; jsonValue?: boolean }
> = {
  command: "set <key> <value>",
  describe: "Store a value: a string unless --json-value",
  builder: (y) =>
    keyPositional(y)
      .positional("value", { type: "string", demandOption: true })
      .option("ttl", { type: "string", describe: 'Expire after this long ("30s", "1h", ms)' })
      .option("json-value", {
        type: "boolean",
        describe: "Parse the value as JSON",
      }) as unknown as Argv<KeyArgs & { value: string; ttl?: string; jsonValue?: boolean }>,
  handler: async (argv) => {
    let value: unknown = String(argv.value);
    if (argv.jsonValue) {
      try {
        value = JSON.parse(String(argv.value));
      } catch (e) {
        throw new CliError(`invalid JSON value for key '${argv.key}': ${(e as Error).message}`, {
          hint: "quote it for the shell, e.g. '{\"a\":1}', or drop --json-value to store a string",
          exitCode: 2,
        });
      }
    }
    await withStore(argv, async (s) => {
      await s.set(argv.key, value as string, argv.ttl === undefined ? {} : { ttl: argv.ttl });
      if (argv.json) printJson(entryJson(s.namespace, (await s.getEntry(argv.key)) as StateEntry));
    });
  },
};

const del: CommandModule<StateArgs, KeyArgs> = {
  command: ["delete <key>", "del <key>", "rm <key>"],
  describe: "Delete a key",
  builder: keyPositional,
  handler: (argv) =>
    withStore(argv, async (s) => {
      if (!(await s.delete(argv.key))) throw notFound(argv.key, s.namespace);
      if (argv.json) printJson({ namespace: s.namespace, key: argv.key, deleted: true });
    }),
};

const list: CommandModule<StateArgs, StateArgs & { prefix?: string }> = {
  command: ["list [prefix]", "ls [prefix]"],
  describe: "List keys, optionally those starting with a prefix",
  builder: (y) =>
    y.positional("prefix", { type: "string" }) as unknown as Argv<StateArgs & { prefix?: string }>,
  handler: (argv) =>
    withStore(argv, async (s) => {
      const entries = await s.list({ prefix: argv.prefix });
      if (argv.json) return printJson(entries.map((e) => entryJson(s.namespace, e)));
      if (entries.length === 0) return println(`No keys in namespace '${s.namespace}'`);
      const c = painter(process.stdout);
      const cut = (t: string) => (t.length > 60 ? `${t.slice(0, 57)}...` : t);
      const rows = [["KEY", "VALUE", "EXPIRES"].map((h) => c.bold(h))];
      for (const e of entries) {
        rows.push([e.key, cut(show(e.value)), e.expiresAt ? formatLocalTime(e.expiresAt) : "-"]);
      }
      println(table(rows));
    }),
};

const inspect: CommandModule<StateArgs, NameArgs> = {
  command: "inspect <name>",
  describe: "Show a lock's holder, fencing token, acquisition and expiry",
  builder: namePositional,
  handler: (argv) =>
    withStore(argv, async (s) => {
      const info = await s.inspect(argv.name);
      if (argv.json) {
        return printJson(
          info
            ? {
                ...info,
                acquiredAt: info.acquiredAt.toISOString(),
                expiresAt: info.expiresAt.toISOString(),
              }
            : null,
        );
      }
      if (!info) return println(`Lock '${argv.name}' is free in namespace '${s.namespace}'`);
      println(`Lock '${info.name}' in namespace '${info.namespace}'`);
      println(`   Holder: ${info.holder}`);
      println(`   Fencing token: ${info.fencingToken}`);
      println(`   Acquired: ${formatLocalTime(info.acquiredAt)}`);
      println(`   Expires: ${formatLocalTime(info.expiresAt)}`);
    }),
};

const unlock: CommandModule<StateArgs, NameArgs & { force?: boolean; owner?: string }> = {
  command: "unlock <name>",
  describe: "Break a lock (--force), or release one you own (--owner)",
  builder: (y) =>
    namePositional(y)
      .option("force", { type: "boolean", describe: "Break it whoever holds it" })
      .option("owner", {
        type: "string",
        describe: "Release it only if held by this owner",
      }) as unknown as Argv<NameArgs & { force?: boolean; owner?: string }>,
  handler: async (argv) => {
    if (!argv.force && argv.owner === undefined) {
      throw new CliError(`refusing to unlock '${argv.name}' without --force or --owner`, {
        hint: "a holder may still be working; check it with `sloth-runner state inspect NAME` first",
        exitCode: 2,
      });
    }
    await withStore(argv, async (s) => {
      const broken = await s.unlock(argv.name, { force: argv.force, owner: argv.owner });
      if (argv.json)
        return printJson({ name: argv.name, namespace: s.namespace, broken: broken !== undefined });
      println(
        broken
          ? `Lock '${argv.name}' released (was held by '${broken.holder}', fencing token ${broken.fencingToken})`
          : `Lock '${argv.name}' was not held`,
      );
    });
  },
};

type LockArgs = NameArgs & {
  wait?: string | boolean;
  ttl: string;
  owner?: string;
  "--"?: string[];
};

const lock: CommandModule<StateArgs, LockArgs> = {
  command: "lock <name>",
  describe:
    "Run a command holding a lock, like flock(1): state lock NAME [--wait DUR | --no-wait] -- CMD...",
  builder: (y) =>
    namePositional(y)
      .option("wait", {
        type: "string",
        describe: "Wait at most this long (default: forever; --no-wait: fail at once)",
      })
      .option("ttl", {
        type: "string",
        default: "30s",
        describe: "Lease length, renewed while the command runs",
      })
      .option("owner", {
        type: "string",
        describe: "Owner recorded for the lock (default: host/pid/random)",
      })
      .epilogue(
        "The command gets SLOTH_FENCING_TOKEN in its environment. If the lease is lost, it is sent SIGTERM " +
          `and state lock exits ${LEASE_LOST_EXIT}; otherwise it exits with the command's code.`,
      ) as unknown as Argv<LockArgs>,
  handler: (argv) => runLocked(argv),
};

async function runLocked(argv: LockArgs): Promise<void> {
  const command = argv["--"] ?? [];
  const [file, ...args] = command.map(String);
  if (!file) {
    throw new CliError("missing command to run", {
      hint: `put it after --, e.g. sloth-runner state lock ${argv.name} -- ./deploy.sh`,
      exitCode: 2,
    });
  }
  const noWait = argv.wait === false || argv.wait === "false";
  const waitMs = noWait ? 0 : typeof argv.wait === "string" ? argv.wait : Number.POSITIVE_INFINITY;
  const { spawn } = await import("node:child_process");
  const { isStateError } = await import("@sloth/state");
  const s = await open(argv);
  const stopWaiting = new AbortController();
  const onSignal = () => stopWaiting.abort();
  process.once("SIGINT", onSignal).once("SIGTERM", onSignal);
  try {
    const lease = await s
      .lock(argv.name, {
        ttl: argv.ttl,
        waitMs,
        owner: argv.owner,
        autoRenew: true,
        signal: stopWaiting.signal,
      })
      .catch((e: unknown) => {
        if (!isStateError(e, "SLOTH_LOCK_HELD")) throw e;
        throw new CliError((e as Error).message, {
          hint: noWait
            ? "wait for it with --wait DUR"
            : `see who holds it with \`sloth-runner state inspect ${argv.name}\``,
        });
      });
    process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
    const child = spawn(file, args, {
      stdio: "inherit",
      env: {
        ...process.env,
        SLOTH_FENCING_TOKEN: String(lease.fencingToken),
        SLOTH_LOCK_NAME: argv.name,
      },
    });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, forward);
    lease.signal.addEventListener("abort", () => {
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
    });
    const exit = await new Promise<{
      code: number | null;
      signal: NodeJS.Signals | null;
      error?: Error;
    }>((resolve) => {
      child.once("error", (error) => resolve({ code: null, signal: null, error }));
      child.once("exit", (code, signal) => resolve({ code, signal }));
    });
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.off(sig, forward);
    const lost = lease.signal.aborted;
    // Releasing can fail when the store is gone (the master down): the
    // lease then expires by itself, and the command's outcome still counts.
    let releaseError: unknown;
    try {
      await lease[Symbol.asyncDispose]();
    } catch (e) {
      releaseError = e;
    }
    if (exit.error) {
      throw new CliError(`cannot run '${file}': ${exit.error.message}`, { exitCode: 127 });
    }
    if (lost) {
      throw new CliError(
        `lost lock '${argv.name}' while '${file}' ran; the command was sent SIGTERM`,
        {
          hint: "another holder may have taken over; the resource must reject writes with an older SLOTH_FENCING_TOKEN",
          exitCode: LEASE_LOST_EXIT,
        },
      );
    }
    if (releaseError !== undefined)
      eprintln(
        `warning: cannot release lock '${argv.name}': ${(releaseError as Error).message}; it expires after its ttl (${argv.ttl})`,
      );
    const { constants } = await import("node:os");
    const code = exit.code ?? 128 + (exit.signal ? (constants.signals[exit.signal] ?? 0) : 0);
    if (code !== 0) throw new ExitCode(code);
  } finally {
    process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
    await s.close();
  }
}

/** `sloth-runner state ...`: keys and locks in `<data dir>/state.db`, or the master's with `--master`. */
export const stateCommand: CommandModule<GlobalArgs, StateArgs> = {
  command: "state <command>",
  describe: "Shared state: keys with TTLs, and locks with fencing tokens",
  builder: (y) =>
    withMasterOptions(y)
      .option("master", {
        type: "string",
        describe: "Use this master's store (name or HOST:PORT) instead of <data dir>/state.db",
      })
      .option("namespace", {
        type: "string",
        default: "default",
        describe: "Namespace of keys and locks",
      })
      .option("json", { type: "boolean", describe: "Print JSON" })
      .command(get)
      .command(set)
      .command(del)
      .command(list)
      .command(inspect)
      .command(unlock)
      .command(lock)
      .demandCommand(1, "missing state command") as unknown as Argv<StateArgs>,
  handler: () => {},
};
