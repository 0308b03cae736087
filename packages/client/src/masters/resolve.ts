import fs from "node:fs";
import { parseHostPort } from "../address.js";
import type { DataDir } from "../data-dir.js";
import { SlothError } from "../errors.js";
import { type MasterRecord, openMastersStore } from "./store.js";

/** The default master address when nothing else is configured. */
export const DEFAULT_MASTER_ADDRESS = "localhost:50053";

/** Where the chosen master came from. */
export type MasterSource = "flag" | "env" | "default" | "legacy" | "fallback";

/** The master a command talks to. */
export interface ResolvedMaster {
  address: string;
  source: MasterSource;
  /** Set when the master was chosen by name from masters.db. */
  record?: MasterRecord | undefined;
}

/** Options for {@link resolveMaster}. */
export interface ResolveMasterOptions {
  /** The `--master` value: an address (contains ':') or a name. */
  flag?: string | undefined;
  dataDir: DataDir;
  env?: NodeJS.ProcessEnv;
}

/**
 * Chooses the master: `--master` (an address when it contains ':', else a
 * name in masters.db) > `SLOTH_RUNNER_MASTER_ADDR` > the default in
 * masters.db > the legacy `master.conf` > localhost:50053.
 */
export function resolveMaster(options: ResolveMasterOptions): ResolvedMaster {
  const env = options.env ?? process.env;
  const flag = options.flag?.trim();
  if (flag) {
    if (flag.includes(":")) {
      parseHostPort(flag);
      return { address: flag, source: "flag" };
    }
    const record = withStore(options.dataDir, (s) => s.get(flag));
    if (!record) {
      throw new SlothError("SLOTH_MASTER_NOT_FOUND", `master '${flag}' not found`, {
        hint: "run `sloth-runner master list`",
        details: { name: flag },
      });
    }
    return { address: record.address, source: "flag", record };
  }
  const fromEnv = env.SLOTH_RUNNER_MASTER_ADDR?.trim();
  if (fromEnv) {
    parseHostPort(fromEnv);
    return { address: fromEnv, source: "env" };
  }
  const def = withStore(options.dataDir, (s) => s.getDefault());
  if (def) return { address: def.address, source: "default", record: def };
  const legacy = readLegacy(options.dataDir.legacyMasterConf);
  if (legacy) return { address: legacy, source: "legacy" };
  return { address: DEFAULT_MASTER_ADDRESS, source: "fallback" };
}

function withStore<T>(
  dataDir: DataDir,
  fn: (s: ReturnType<typeof openMastersStore>) => T,
): T | undefined {
  if (!fs.existsSync(dataDir.mastersDb)) return undefined;
  const store = openMastersStore(dataDir.mastersDb);
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

function readLegacy(file: string): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  const line = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l !== "" && !l.startsWith("#"));
  if (!line) return undefined;
  try {
    parseHostPort(line);
  } catch (cause) {
    throw new SlothError("SLOTH_INVALID_ADDRESS", `invalid address '${line}' in ${file}`, {
      cause,
      hint: "write one HOST:PORT line there, or add a master with `sloth-runner master add`",
    });
  }
  return line;
}
