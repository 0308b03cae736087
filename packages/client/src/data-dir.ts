import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SlothError } from "./errors.js";

/** Where a data directory setting came from. */
export type DataDirSource = "flag" | "env" | "home";

/** The resolved data directory and the paths of everything in it. */
export interface DataDir {
  root: string;
  source: DataDirSource;
  /** The CLI's registry of named masters. */
  mastersDb: string;
  /** The legacy one-line `HOST:PORT` master file. */
  legacyMasterConf: string;
  master: {
    dir: string;
    registryDb: string;
    /** The state store the master serves to `--master` clients and remote runs. */
    stateDb: string;
    token: string;
    pid: string;
    log: string;
  };
  /** Paths of one local agent's files. */
  agent(name: string): { dir: string; identity: string; pid: string; log: string };
  historyDb: string;
  stateDb: string;
  stacksDb: string;
  /** Recurring runs: `sloth-runner scheduler`. */
  schedulesDb: string;
  /** Sealed secrets: `sloth-runner secrets`. */
  secretsDb: string;
  /** The key the secrets are sealed with (unless SLOTH_RUNNER_SECRETS_KEY gives a passphrase). */
  secretsKey: string;
  runs: string;
  /** The last scan of each delegated workspace, so the next run hashes only what changed. */
  workspaceScans: string;
}

/**
 * Resolves the data directory: `flag` (from `--data-dir`) >
 * `SLOTH_RUNNER_DATA_DIR` > `~/.sloth-runner`. Nothing is created.
 */
export function resolveDataDir(flag?: string, env: NodeJS.ProcessEnv = process.env): DataDir {
  let root: string;
  let source: DataDirSource;
  if (flag) {
    root = path.resolve(flag);
    source = "flag";
  } else if (env.SLOTH_RUNNER_DATA_DIR) {
    root = path.resolve(env.SLOTH_RUNNER_DATA_DIR);
    source = "env";
  } else {
    root = path.join(os.homedir(), ".sloth-runner");
    source = "home";
  }
  const masterDir = path.join(root, "master");
  return {
    root,
    source,
    mastersDb: path.join(root, "masters.db"),
    legacyMasterConf: path.join(root, "master.conf"),
    master: {
      dir: masterDir,
      registryDb: path.join(masterDir, "registry.db"),
      stateDb: path.join(masterDir, "state.db"),
      token: path.join(masterDir, "token"),
      pid: path.join(masterDir, "master.pid"),
      log: path.join(masterDir, "master.log"),
    },
    agent(name: string) {
      const dir = path.join(root, "agents", name);
      return {
        dir,
        identity: path.join(dir, "identity"),
        pid: path.join(dir, "agent.pid"),
        log: path.join(dir, "agent.log"),
      };
    },
    historyDb: path.join(root, "history.db"),
    stateDb: path.join(root, "state.db"),
    stacksDb: path.join(root, "stacks.db"),
    schedulesDb: path.join(root, "schedules.db"),
    secretsDb: path.join(root, "secrets.db"),
    secretsKey: path.join(root, "secrets.key"),
    runs: path.join(root, "runs"),
    workspaceScans: path.join(root, "workspace-scans"),
  };
}

/**
 * Creates `dir` (and parents) with mode 0700 if missing, and returns it.
 * Existing directories keep their mode.
 */
export function ensurePrivateDir(dir: string): string {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (cause) {
    throw new SlothError(
      "SLOTH_DATA_DIR",
      `cannot create directory ${dir}: ${(cause as Error).message}`,
      {
        cause,
        hint: "choose a writable place with --data-dir or SLOTH_RUNNER_DATA_DIR",
      },
    );
  }
  return dir;
}
