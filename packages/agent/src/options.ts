import os from "node:os";
import { isAgentName, parseHostPort } from "@sloth/client";
import { invalidArgument } from "./errors.js";

/** The shortest cluster token an agent accepts, as for a master. */
const MIN_TOKEN_LENGTH = 16;

const LABEL_KEY = /^[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,62})$/;

/** Checks an agent name; throws SLOTH_INVALID_ARGUMENT. */
export function validateAgentName(name: string): string {
  if (!isAgentName(name)) {
    throw invalidArgument(
      `invalid agent name '${name}': use letters, digits, '.', '_' and '-', starting with a letter or digit`,
      "choose another with --name",
    );
  }
  return name;
}

/** Parses repeated `--label k=v` values into a map; throws on malformed ones. */
export function parseLabels(values: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const raw of values) {
    const eq = raw.indexOf("=");
    const key = eq < 0 ? raw : raw.slice(0, eq);
    if (eq < 0 || !LABEL_KEY.test(key)) {
      throw invalidArgument(
        `invalid label '${raw}': expected KEY=VALUE`,
        "pass labels as --label env=prod",
      );
    }
    labels[key] = raw.slice(eq + 1);
  }
  return labels;
}

/** Checks a listening port (0 = any free port). */
export function validatePort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw invalidArgument(`invalid port '${port}': expected 0-65535`, "choose another with --port");
  }
  return port;
}

/** Options after defaults and validation. */
export interface ValidatedOptions {
  name: string;
  port: number;
  bindAddress: string;
  reportAddress: string | undefined;
  labels: Record<string, string>;
  workdir: string;
  shutdownGraceMs: number;
  killGraceMs: number;
}

/** Applies defaults to createAgent options and rejects bad values early. */
export function validateAgentOptions(options: {
  masterAddress: string;
  token: string;
  name?: string | undefined;
  port?: number | undefined;
  bindAddress?: string | undefined;
  reportAddress?: string | undefined;
  labels?: Readonly<Record<string, string>> | undefined;
  workdir?: string | undefined;
  shutdownGraceMs?: number | undefined;
  killGraceMs?: number | undefined;
}): ValidatedOptions {
  parseHostPort(options.masterAddress);
  if (!options.token) {
    throw invalidArgument(
      "cannot create agent: the cluster token is empty",
      "pass --token-file FILE or set SLOTH_RUNNER_TOKEN",
    );
  }
  // Anyone who guesses it runs commands here: the master's minimum applies
  // (an agent serves commands even while its master is away).
  if (options.token.length < MIN_TOKEN_LENGTH) {
    throw invalidArgument(
      `cannot create agent: the cluster token is too short (${options.token.length} characters; at least ${MIN_TOKEN_LENGTH})`,
      "use the master's token (<data dir>/master/token, 256 random bits)",
    );
  }
  const reportAddress = options.reportAddress?.trim() || undefined;
  if (reportAddress) parseHostPort(reportAddress);
  return {
    name: validateAgentName(options.name ?? os.hostname()),
    port: validatePort(options.port ?? 50051),
    bindAddress: options.bindAddress?.trim() || "0.0.0.0",
    reportAddress,
    labels: { ...options.labels },
    workdir: options.workdir ?? process.cwd(),
    shutdownGraceMs: options.shutdownGraceMs ?? 30_000,
    killGraceMs: options.killGraceMs ?? 2000,
  };
}
