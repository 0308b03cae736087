import fs from "node:fs";
import path from "node:path";
import { SlothError } from "../errors.js";
import { renderSystemdUnit } from "./systemd.js";

/** Options of {@link serviceUnitFor}. */
export interface ServiceUnitFor {
  /** Unit name without `.service`, such as "sloth-runner-agent". */
  unitName: string;
  description: string;
  /** The script to run with this Node (`process.argv[1]`). */
  script: string;
  /** Its arguments, such as the agent's flags. */
  args: readonly string[];
  user?: string | undefined;
  workingDirectory?: string | undefined;
}

// Flags naming files or folders: a unit has no working directory of the
// shell that wrote it, so their values are made absolute.
const PATH_FLAGS = ["--token-file", "--tls-cert", "--tls-key", "--tls-ca", "--data-dir"];

/**
 * The arguments a service runs with: drops those that only concern
 * installing (`--print`, `--unit-dir X`, `--user X`, `--daemon`), makes
 * path values absolute, and adds `--data-dir` from `SLOTH_RUNNER_DATA_DIR`
 * when none is given (a service does not inherit the shell's environment).
 * `warn` hears of files that do not exist (yet) on this machine.
 */
export function serviceArgs(
  argv: readonly string[],
  drop: readonly string[] = ["install-service"],
  env: NodeJS.ProcessEnv = process.env,
  warn?: (message: string) => void,
): string[] {
  const out: string[] = [];
  let dataDir = false;
  const absolute = (flag: string, value: string) => {
    if (flag === "--data-dir") dataDir = true;
    const abs = path.resolve(value);
    if (flag !== "--data-dir" && !fs.existsSync(abs))
      warn?.(`${flag} ${abs} does not exist on this machine; the service will need it`);
    return abs;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (drop.includes(a) || a === "--print" || a === "--daemon") continue;
    if (a === "--unit-dir" || a === "--user") {
      i++;
      continue;
    }
    if (a.startsWith("--unit-dir=") || a.startsWith("--user=")) continue;
    const eq = a.indexOf("=");
    const flag = eq === -1 ? a : a.slice(0, eq);
    if (PATH_FLAGS.includes(flag)) {
      if (eq !== -1) out.push(`${flag}=${absolute(flag, a.slice(eq + 1))}`);
      else if (i + 1 < argv.length) out.push(a, absolute(flag, argv[++i]!));
      else out.push(a);
      continue;
    }
    out.push(a);
  }
  if (!dataDir && env.SLOTH_RUNNER_DATA_DIR)
    out.push("--data-dir", path.resolve(env.SLOTH_RUNNER_DATA_DIR));
  return out;
}

/** Renders the unit that runs `script args` with this Node, always restarted. */
export function serviceUnitFor(o: ServiceUnitFor): string {
  return renderSystemdUnit({
    description: o.description,
    execStart: [process.execPath, fs.realpathSync(o.script), ...o.args],
    syslogIdentifier: o.unitName,
    user: o.user,
    workingDirectory: o.workingDirectory,
  });
}

/** Writes `<unitDir>/<unitName>.service` (0644) and returns its path. */
export function writeServiceUnit(unitDir: string, unitName: string, unit: string): string {
  const file = path.join(unitDir, `${unitName}.service`);
  try {
    fs.mkdirSync(unitDir, { recursive: true });
    fs.writeFileSync(file, unit, { mode: 0o644 });
  } catch (cause) {
    throw new SlothError(
      "SLOTH_INVALID_ARGUMENT",
      `cannot write ${file}: ${(cause as Error).message}`,
      {
        cause,
        hint: "run as root, or choose another folder with --unit-dir (or use --print)",
      },
    );
  }
  return file;
}
