import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { assertClusterToken, resolveToken, tokenFileWarning } from "./token.js";

const made: string[] = [];
afterEach(() => {
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tokenFile(mode: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-token-"));
  made.push(dir);
  const file = path.join(dir, "token");
  fs.writeFileSync(file, "a-token-of-enough-length\n");
  fs.chmodSync(file, mode);
  return file;
}

describe("token files", () => {
  it("says when other users can read or change the file, and how to fix it", () => {
    expect(tokenFileWarning(tokenFile(0o600))).toBeUndefined();
    expect(tokenFileWarning(tokenFile(0o400))).toBeUndefined();
    const open = tokenFile(0o644);
    expect(tokenFileWarning(open)).toBe(
      `token file ${open} can be read or changed by other users (mode 0644): run chmod 600 ${open}`,
    );
    expect(tokenFileWarning(tokenFile(0o620))).toMatch(/mode 0620/);
    // Nothing to say about a file that is not there.
    expect(tokenFileWarning(path.join(os.tmpdir(), "sloth-no-such-token"))).toBeUndefined();
  });

  it("reports it with the token, never the token in it", () => {
    const open = tokenFile(0o644);
    const r = resolveToken({ tokenFile: open, env: {} });
    expect(r?.token).toBe("a-token-of-enough-length");
    expect(r?.warning).toMatch(/chmod 600/);
    expect(r?.warning).not.toContain("a-token-of-enough-length");
    expect(resolveToken({ tokenFile: tokenFile(0o600), env: {} })?.warning).toBeUndefined();
    // From the environment: no file, nothing to say.
    expect(resolveToken({ env: { SLOTH_RUNNER_TOKEN: "x".repeat(20) } })?.warning).toBeUndefined();
  });

  it("refuses a token too short to be a cluster token, naming where it came from, not the token", () => {
    const short = tokenFile(0o600);
    fs.writeFileSync(short, "s3cret\n");
    const fromFile = resolveToken({ tokenFile: short, env: {} });
    expect(fromFile).toBeDefined();
    expect(() => assertClusterToken(fromFile!)).toThrow(
      `the cluster token in token file ${short} is too short (6 characters; a cluster token has at least 16)`,
    );
    try {
      assertClusterToken(fromFile!);
    } catch (e) {
      expect((e as Error & { describe(): string }).describe()).not.toContain("s3cret");
      expect((e as { code: string }).code).toBe("SLOTH_TOKEN_MISSING");
    }
    const fromEnv = resolveToken({ env: { SLOTH_RUNNER_TOKEN: "x" } });
    expect(() => assertClusterToken(fromEnv!)).toThrow(
      "the cluster token in SLOTH_RUNNER_TOKEN is too short (1 character; a cluster token has at least 16)",
    );
    expect(() => assertClusterToken({ token: "y".repeat(16), source: "env" })).not.toThrow();
  });
});
