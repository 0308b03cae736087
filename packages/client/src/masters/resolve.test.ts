import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { resolveDataDir } from "../data-dir.js";
import { isSlothError } from "../errors.js";
import { resolveToken } from "../token.js";
import { resolveMaster } from "./resolve.js";
import { openMastersStore } from "./store.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-client-"));
  dirs.push(d);
  return d;
}

describe("resolveDataDir", () => {
  it("prefers the flag, then SLOTH_RUNNER_DATA_DIR, then ~/.sloth-runner", () => {
    expect(resolveDataDir("/x", { SLOTH_RUNNER_DATA_DIR: "/y" }).root).toBe("/x");
    expect(resolveDataDir(undefined, { SLOTH_RUNNER_DATA_DIR: "/y" }).root).toBe("/y");
    expect(resolveDataDir(undefined, {}).root).toBe(path.join(os.homedir(), ".sloth-runner"));
    const d = resolveDataDir("/d", {});
    expect(d.master.registryDb).toBe("/d/master/registry.db");
    expect(d.agent("web-1").identity).toBe("/d/agents/web-1/identity");
    expect(d.mastersDb).toBe("/d/masters.db");
  });
});

describe("masters store", () => {
  it("makes the first master the default, keeps names unique, guards the default", () => {
    const dir = resolveDataDir(tmp(), {});
    const s = openMastersStore(dir.mastersDb);
    expect(s.add({ name: "production", address: "192.168.1.29:50053" }).isDefault).toBe(true);
    expect(
      s.add({ name: "staging", address: "10.0.0.5:50053", description: "Staging" }).isDefault,
    ).toBe(false);
    expect(() => s.add({ name: "staging", address: "10.0.0.6:50053" })).toThrow(
      "master 'staging' already exists",
    );
    expect(() => s.remove("production")).toThrow(
      "cannot delete default master 'production'. Select a different default first",
    );
    s.select("staging");
    expect(s.getDefault()?.name).toBe("staging");
    expect(s.list().filter((m) => m.isDefault)).toHaveLength(1);
    s.remove("production");
    expect(s.update("staging", { address: "10.0.0.6:50053" }).address).toBe("10.0.0.6:50053");
    expect(s.remove("staging").name).toBe("staging");
    expect(s.list()).toEqual([]);
    s.close();
    expect(fs.statSync(dir.mastersDb).mode & 0o777).toBe(0o600);
    expect(fs.statSync(dir.root).mode & 0o777).toBe(0o700);
  });
});

describe("resolveMaster", () => {
  it("follows flag > env > default > legacy master.conf > localhost:50053", () => {
    const dir = resolveDataDir(tmp(), {});
    expect(resolveMaster({ dataDir: dir, env: {} })).toMatchObject({
      address: "localhost:50053",
      source: "fallback",
    });
    fs.mkdirSync(dir.root, { recursive: true });
    fs.writeFileSync(dir.legacyMasterConf, "# old\n10.1.1.1:50053\n");
    expect(resolveMaster({ dataDir: dir, env: {} })).toMatchObject({
      address: "10.1.1.1:50053",
      source: "legacy",
    });
    const s = openMastersStore(dir.mastersDb);
    s.add({ name: "prod", address: "192.168.1.29:50053", tokenFile: "/secrets/prod" });
    s.add({ name: "stage", address: "10.0.0.5:50053" });
    s.close();
    expect(resolveMaster({ dataDir: dir, env: {} })).toMatchObject({
      address: "192.168.1.29:50053",
      source: "default",
    });
    const env = { SLOTH_RUNNER_MASTER_ADDR: "127.0.0.1:7000" };
    expect(resolveMaster({ dataDir: dir, env })).toMatchObject({
      address: "127.0.0.1:7000",
      source: "env",
    });
    expect(resolveMaster({ dataDir: dir, env, flag: "stage" })).toMatchObject({
      address: "10.0.0.5:50053",
      source: "flag",
    });
    expect(resolveMaster({ dataDir: dir, env, flag: "1.2.3.4:9" })).toMatchObject({
      address: "1.2.3.4:9",
    });
    let err: unknown;
    try {
      resolveMaster({ dataDir: dir, env, flag: "prodd" });
    } catch (e) {
      err = e;
    }
    expect(isSlothError(err, "SLOTH_MASTER_NOT_FOUND")).toBe(true);
    expect((err as Error).message).toBe("master 'prodd' not found");
  });

  it("rejects a malformed legacy master.conf clearly", () => {
    const dir = resolveDataDir(tmp(), {});
    fs.mkdirSync(dir.root, { recursive: true });
    fs.writeFileSync(dir.legacyMasterConf, "not an address\n");
    expect(() => resolveMaster({ dataDir: dir, env: {} })).toThrow(
      /invalid address 'not an address' in .*master\.conf/,
    );
  });
});

describe("resolveToken", () => {
  it("follows --token-file > SLOTH_RUNNER_TOKEN > the master's token file > the data dir token", () => {
    const d = tmp();
    const f = (name: string, text: string) => {
      const p = path.join(d, name);
      fs.writeFileSync(p, text);
      return p;
    };
    const flag = f("flag", "from-flag\n");
    const master = f("master", "from-master\n");
    const local = f("local", "from-local\n");
    const env = { SLOTH_RUNNER_TOKEN: "from-env" };
    const all = { tokenFile: flag, env, masterTokenFile: master, dataDirTokenFile: local };
    expect(resolveToken(all)?.token).toBe("from-flag");
    expect(resolveToken({ ...all, tokenFile: undefined })?.token).toBe("from-env");
    expect(resolveToken({ ...all, tokenFile: undefined, env: {} })?.token).toBe("from-master");
    expect(resolveToken({ env: {}, dataDirTokenFile: local })?.token).toBe("from-local");
    expect(resolveToken({ env: {}, dataDirTokenFile: path.join(d, "missing") })).toBeUndefined();
    expect(() => resolveToken({ tokenFile: f("empty", "\n") })).toThrow(/is empty/);
    expect(() => resolveToken({ tokenFile: path.join(d, "nope") })).toThrow(
      /cannot read token file .*: no such file/,
    );
  });
});
