import fs from "node:fs";

// Read at run time from the package's own manifest so src/ (tests) and
// dist/ (installed) report the same version without a build step.
function readVersion(): string {
  try {
    const text = fs.readFileSync(new URL("../package.json", import.meta.url), "utf8");
    const pkg = JSON.parse(text) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "0.0.0";
  } catch {
    return "0.0.0";
  }
}

/** The version of @sloth/agent, reported in Health, metrics and registration. */
export const AGENT_VERSION: string = readVersion();
