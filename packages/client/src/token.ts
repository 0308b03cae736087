import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { SlothError } from "./errors.js";

/** Where a token was found, for messages that must not show the token. */
export type TokenSource = "flag" | "env" | "master" | "data-dir";

/** A cluster token and where it came from. */
export interface ResolvedToken {
  token: string;
  source: TokenSource;
  /** The file it was read from, when it came from a file. */
  file?: string;
  /** Why that file is not safe (other users may read or change it), to show the user. */
  warning?: string;
}

/**
 * Why a token file is not safe to keep a secret in, or undefined: a file
 * other users may read or write (any group or other permission bit), as ssh
 * says of a private key. Says nothing when the file cannot be checked.
 */
export function tokenFileWarning(file: string): string | undefined {
  let mode: number;
  try {
    mode = fs.statSync(file).mode;
  } catch {
    return undefined;
  }
  if ((mode & 0o077) === 0) return undefined;
  const perm = (mode & 0o777).toString(8).padStart(4, "0");
  return `token file ${file} can be read or changed by other users (mode ${perm}): run chmod 600 ${file}`;
}

/** Reads a token file: the first line, trimmed. An empty file is an error. */
export function readTokenFile(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new SlothError(
      "SLOTH_TOKEN_MISSING",
      `cannot read token file ${file}: ${code === "ENOENT" ? "no such file" : (cause as Error).message}`,
      { cause, hint: "pass --token-file FILE or set SLOTH_RUNNER_TOKEN", details: { file } },
    );
  }
  const token = text.split(/\r?\n/, 1)[0]?.trim() ?? "";
  if (token === "") {
    throw new SlothError("SLOTH_TOKEN_MISSING", `token file ${file} is empty`, {
      hint: "write the cluster token into it, or pass --token-file with another file",
      details: { file },
    });
  }
  return token;
}

/** Generates a new cluster token: 256 random bits, base64url. */
export function generateToken(): string {
  return crypto.randomBytes(32).toString("base64url");
}

/**
 * Reads the token at `file`, creating it with a fresh token (mode 0600) when
 * it does not exist. Returns the token and whether it was created.
 */
export function ensureTokenFile(file: string): { token: string; created: boolean } {
  if (fs.existsSync(file)) return { token: readTokenFile(file), created: false };
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const token = generateToken();
  try {
    fs.writeFileSync(file, `${token}\n`, { mode: 0o600, flag: "wx" });
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "EEXIST") {
      return { token: readTokenFile(file), created: false };
    }
    throw cause;
  }
  return { token, created: true };
}

/** Options for {@link resolveToken}, in priority order. */
export interface ResolveTokenOptions {
  /** `--token-file`. */
  tokenFile?: string | undefined;
  /** The environment; `SLOTH_RUNNER_TOKEN` is read from it. */
  env?: NodeJS.ProcessEnv;
  /** The token file recorded for the selected master in masters.db. */
  masterTokenFile?: string | undefined;
  /** `<data dir>/master/token`. */
  dataDirTokenFile?: string | undefined;
}

/**
 * Finds the cluster token: `--token-file` > `SLOTH_RUNNER_TOKEN` > the
 * selected master's recorded token file > `<data dir>/master/token`.
 * Returns undefined when none exists.
 */
export function resolveToken(options: ResolveTokenOptions): ResolvedToken | undefined {
  const env = options.env ?? process.env;
  if (options.tokenFile) return fromFile(options.tokenFile, "flag");
  const fromEnv = env.SLOTH_RUNNER_TOKEN?.trim();
  if (fromEnv) return { token: fromEnv, source: "env" };
  if (options.masterTokenFile) return fromFile(options.masterTokenFile, "master");
  if (options.dataDirTokenFile && fs.existsSync(options.dataDirTokenFile))
    return fromFile(options.dataDirTokenFile, "data-dir");
  return undefined;
}

function fromFile(file: string, source: TokenSource): ResolvedToken {
  const token = readTokenFile(file);
  const warning = tokenFileWarning(file);
  return warning ? { token, source, file, warning } : { token, source, file };
}

/** The shortest cluster token a master or an agent accepts. */
export const MIN_TOKEN_LENGTH = 16;

/**
 * Throws when a resolved token is too short to be a cluster token (masters
 * and agents refuse those): the error names where it came from, never the
 * token, so a caller finds out before anything is sent.
 */
export function assertClusterToken(resolved: ResolvedToken): void {
  const n = resolved.token.length;
  if (n >= MIN_TOKEN_LENGTH) return;
  const where =
    resolved.source === "env" ? "SLOTH_RUNNER_TOKEN" : `token file ${resolved.file ?? "(unknown)"}`;
  throw new SlothError(
    "SLOTH_TOKEN_MISSING",
    `the cluster token in ${where} is too short (${n} character${n === 1 ? "" : "s"}; a cluster token has at least ${MIN_TOKEN_LENGTH})`,
    {
      hint: "use the token the master wrote to <data dir>/master/token on its machine",
      details: resolved.file
        ? { file: resolved.file, source: resolved.source }
        : { source: resolved.source },
    },
  );
}

/** Compares two secrets in constant time (for equal lengths of their hashes). */
export function secretsEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
  const ha = crypto.createHash("sha256").update(a).digest();
  const hb = crypto.createHash("sha256").update(b).digest();
  return crypto.timingSafeEqual(ha, hb);
}
