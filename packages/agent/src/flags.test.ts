import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { isSlothError } from "@sloth/client";
import { afterEach, describe, expect, it } from "vitest";
import { agentOptionsFromFlags } from "./flags.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-agent-flags-"));
  dirs.push(d);
  return d;
}

function fail(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error");
}

describe("agentOptionsFromFlags", () => {
  it("passes --keep-workspaces on, and refuses a count that is not a whole number from 0 to 100", () => {
    const env = { SLOTH_RUNNER_TOKEN: "t" };
    const dir = dataDir();
    expect(agentOptionsFromFlags({ dataDir: dir }, env).keepWorkspaces).toBeUndefined();
    expect(agentOptionsFromFlags({ dataDir: dir, keepWorkspaces: 0 }, env).keepWorkspaces).toBe(0);
    for (const bad of [-1, 1.5, Number.NaN, 101]) {
      const e = fail(() => agentOptionsFromFlags({ dataDir: dir, keepWorkspaces: bad }, env));
      expect(isSlothError(e, "SLOTH_INVALID_ARGUMENT")).toBe(true);
      expect((e as Error).message).toMatch(/invalid --keep-workspaces/);
    }
  });

  it("reads --cache-limit as a size, and refuses one that is not", () => {
    const env = { SLOTH_RUNNER_TOKEN: "t" };
    const dir = dataDir();
    const limit = (cacheLimit?: string) =>
      agentOptionsFromFlags({ dataDir: dir, cacheLimit }, env).cacheLimitBytes;
    expect(limit()).toBeUndefined();
    expect(limit("2G")).toBe(2 * 1024 ** 3);
    expect(limit("500MiB")).toBe(500 * 1024 ** 2);
    expect(limit("1.5k")).toBe(1536);
    expect(limit("1000")).toBe(1000);
    const e = fail(() => limit("lots"));
    expect(isSlothError(e, "SLOTH_INVALID_ARGUMENT")).toBe(true);
    expect((e as Error).message).toBe("invalid --cache-limit 'lots'");
  });

  it("takes the master from the flag, then SLOTH_RUNNER_MASTER_ADDR, then localhost:50053", () => {
    const dir = dataDir();
    const env = { SLOTH_RUNNER_TOKEN: "t" };
    expect(
      agentOptionsFromFlags({ dataDir: dir, master: "10.0.0.1:7000" }, env).masterAddress,
    ).toBe("10.0.0.1:7000");
    expect(
      agentOptionsFromFlags(
        { dataDir: dir },
        { ...env, SLOTH_RUNNER_MASTER_ADDR: "m.example:6000" },
      ).masterAddress,
    ).toBe("m.example:6000");
    expect(agentOptionsFromFlags({ dataDir: dir }, env).masterAddress).toBe("localhost:50053");
  });

  it("takes the token from --token-file, then SLOTH_RUNNER_TOKEN, then <data dir>/master/token", () => {
    const dir = dataDir();
    fs.mkdirSync(path.join(dir, "master"));
    fs.writeFileSync(path.join(dir, "master/token"), "from-data-dir\n");
    const file = path.join(dir, "other-token");
    fs.writeFileSync(file, "from-file\n");
    expect(
      agentOptionsFromFlags({ dataDir: dir, tokenFile: file }, { SLOTH_RUNNER_TOKEN: "from-env" })
        .token,
    ).toBe("from-file");
    expect(agentOptionsFromFlags({ dataDir: dir }, { SLOTH_RUNNER_TOKEN: "from-env" }).token).toBe(
      "from-env",
    );
    expect(agentOptionsFromFlags({ dataDir: dir }, {}).token).toBe("from-data-dir");
  });

  it("parses labels and keeps the other flags", () => {
    const dir = dataDir();
    const o = agentOptionsFromFlags(
      {
        dataDir: dir,
        name: "web1",
        port: 0,
        bindAddress: "127.0.0.1",
        reportAddress: "1.2.3.4:5",
        label: ["env=prod", "zone=a=b", "empty="],
      },
      { SLOTH_RUNNER_TOKEN: "t" },
    );
    expect(o).toMatchObject({
      name: "web1",
      port: 0,
      bindAddress: "127.0.0.1",
      reportAddress: "1.2.3.4:5",
      labels: { env: "prod", zone: "a=b", empty: "" },
      dataDir: dir,
    });
  });

  it("rejects bad input with errors worded for the command line", () => {
    const dir = dataDir();
    const env = { SLOTH_RUNNER_TOKEN: "t" };
    const label = fail(() => agentOptionsFromFlags({ dataDir: dir, label: ["=x"] }, env));
    expect(isSlothError(label, "SLOTH_INVALID_ARGUMENT")).toBe(true);
    const port = fail(() => agentOptionsFromFlags({ dataDir: dir, port: Number.NaN }, env));
    expect(isSlothError(port, "SLOTH_INVALID_ARGUMENT")).toBe(true);
    const master = fail(() => agentOptionsFromFlags({ dataDir: dir, master: "prod" }, env));
    expect(isSlothError(master, "SLOTH_MASTER_NOT_FOUND")).toBe(true);
    const token = fail(() => agentOptionsFromFlags({ dataDir: dir }, {}));
    expect(isSlothError(token, "SLOTH_TOKEN_MISSING")).toBe(true);
  });
});
