/** Options of {@link renderSystemdUnit}. */
export interface SystemdUnitOptions {
  description: string;
  /** The command and its arguments; each is quoted for systemd. */
  execStart: readonly string[];
  /** Identifier in the journal. */
  syslogIdentifier: string;
  user?: string | undefined;
  workingDirectory?: string | undefined;
  /** Environment variables (never put secrets here: use a token file). */
  environment?: Record<string, string> | undefined;
}

function quote(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `"${arg.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\$/g, "$$$$").replace(/%/g, "%%")}"`;
}

/**
 * Renders a systemd service unit that restarts the process always, raises
 * the open-file limit and forbids privilege escalation.
 */
export function renderSystemdUnit(o: SystemdUnitOptions): string {
  // One line per option and its value, for people reading the unit.
  const exec: string[] = [];
  for (const arg of o.execStart.map(quote)) {
    const last = exec.length - 1;
    if (
      last > 0 &&
      exec[last]!.startsWith("--") &&
      !exec[last]!.includes(" ") &&
      !arg.startsWith("--")
    ) {
      exec[last] = `${exec[last]} ${arg}`;
    } else exec.push(arg);
  }
  const lines = [
    "[Unit]",
    `Description=${o.description}`,
    "After=network-online.target",
    "Wants=network-online.target",
    "StartLimitIntervalSec=60",
    "StartLimitBurst=5",
    "",
    "[Service]",
    "Type=simple",
    `User=${o.user ?? "root"}`,
    ...(o.workingDirectory ? [`WorkingDirectory=${o.workingDirectory}`] : []),
    ...Object.entries(o.environment ?? {}).map(([k, v]) => `Environment=${quote(`${k}=${v}`)}`),
    `ExecStart=${exec.join(" \\\n  ")}`,
    "Restart=always",
    "RestartSec=5s",
    "KillMode=mixed",
    "TimeoutStopSec=40s",
    "StandardOutput=journal",
    "StandardError=journal",
    `SyslogIdentifier=${o.syslogIdentifier}`,
    "LimitNOFILE=65536",
    "NoNewPrivileges=true",
    "PrivateTmp=true",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ];
  return lines.join("\n");
}
