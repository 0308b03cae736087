import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { ensurePrivateDir, SlothError } from "@sloth/client";

/** The agent's identity secret and where it is kept. */
export interface AgentIdentity {
  /** 32 random bytes; the master stores only their hash. */
  secret: Uint8Array;
  file: string;
  /** True when this call created the file. */
  created: boolean;
}

/**
 * Reads the identity secret at `file`, creating it on first use (256 random
 * bits, base64url, mode 0600; parent directories 0700). Each agent name has
 * its own file, so several agents on one host keep separate identities.
 */
export function loadOrCreateIdentity(file: string): AgentIdentity {
  ensurePrivateDir(path.dirname(file));
  const existing = readIdentity(file);
  if (existing) return { secret: existing, file, created: false };
  const secret = crypto.randomBytes(32);
  try {
    // "wx": two agents starting at once under one name must not both win.
    fs.writeFileSync(file, `${secret.toString("base64url")}\n`, { mode: 0o600, flag: "wx" });
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "EEXIST") {
      const raced = readIdentity(file);
      if (raced) return { secret: raced, file, created: false };
    }
    throw new SlothError(
      "SLOTH_DATA_DIR",
      `cannot write agent identity ${file}: ${(cause as Error).message}`,
      {
        cause,
        hint: "choose a writable place with --data-dir or SLOTH_RUNNER_DATA_DIR",
      },
    );
  }
  return { secret: new Uint8Array(secret), file, created: true };
}

function readIdentity(file: string): Uint8Array | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new SlothError(
      "SLOTH_DATA_DIR",
      `cannot read agent identity ${file}: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  const secret = Buffer.from(text.trim(), "base64url");
  if (secret.length !== 32) {
    throw new SlothError("SLOTH_DATA_DIR", `agent identity ${file} is corrupt`, {
      // Its folder is the agent's: <data dir>/agents/NAME/identity.
      hint: `delete it and run \`sloth-runner agent delete ${path.basename(path.dirname(file))}\` on the master, then start the agent again`,
      details: { file },
    });
  }
  return new Uint8Array(secret);
}
