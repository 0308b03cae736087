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

/** Drops the arguments that only concern installing: `--print`, `--unit-dir X`, `--user X`. */
export function serviceArgs(
  argv: readonly string[],
  drop: readonly string[] = ["install-service"],
): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (drop.includes(a) || a === "--print" || a === "--daemon") continue;
    if (a === "--unit-dir" || a === "--user") {
      i++;
      continue;
    }
    if (a.startsWith("--unit-dir=") || a.startsWith("--user=")) continue;
    out.push(a);
  }
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
