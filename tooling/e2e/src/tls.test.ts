import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { connect, fromConnectError, masterClient } from "@sloth/client";
import { cleanup, runCli, spawnAgent, spawnMaster, tempDir } from "@sloth/testkit";
import { afterEach, beforeAll, describe, expect, it } from "vitest";

afterEach(cleanup);

let caDir: string;
const file = (name: string) => path.join(caDir, name);

beforeAll(async () => {
  // A throwaway CA made with the CLI, as an operator would.
  caDir = fs.mkdtempSync(path.join((await import("node:os")).tmpdir(), "sloth-ca-"));
  const init = await runCli(["ca", "init", "--dir", caDir]);
  expect(init.code, init.stderr).toBe(0);
  expect(fs.statSync(file("ca.key")).mode & 0o777).toBe(0o600);
  for (const [name, flags] of [
    ["master", ["--san", "127.0.0.1", "--san", "localhost"]],
    ["agent-1", ["--san", "127.0.0.1"]],
    // The operator's CLI only connects: a client certificate, no address.
    ["operator", ["--client"]],
    ["wrong-host", ["--san", "example.invalid"]],
  ] as const) {
    const r = await runCli(["ca", "issue", name, "--dir", caDir, ...flags]);
    expect(r.code, r.stderr).toBe(0);
  }
}, 60_000);

const tlsArgs = (name: string) => [
  "--tls-cert",
  file(`${name}.crt`),
  "--tls-key",
  file(`${name}.key`),
  "--tls-ca",
  file("ca.crt"),
];

describe("TLS and mTLS", () => {
  it("runs a cluster over mTLS: master, agent and CLI each with their certificate", async () => {
    const master = await spawnMaster({ args: tlsArgs("master") });
    const tokenFile = path.join(master.dataDir, "master", "token");
    await spawnAgent({
      name: "agent-1",
      master: master.address,
      tokenFile,
      args: tlsArgs("agent-1"),
    });
    const cli = (...args: string[]) =>
      runCli([
        "--data-dir",
        master.dataDir,
        ...args,
        "--master",
        master.address,
        ...tlsArgs("operator"),
      ]);
    const list = await cli("agent", "list", "--json");
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject([{ name: "agent-1", status: "active" }]);
    const run = await runCli([
      "--data-dir",
      master.dataDir,
      "agent",
      "run",
      "agent-1",
      "--master",
      master.address,
      ...tlsArgs("operator"),
      "--quiet",
      "--",
      "echo secure",
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe("secure\n");
    expect(master.proc.stderr()).not.toMatch(/without TLS/);

    const untrusted = await runCli([
      "--data-dir",
      master.dataDir,
      "agent",
      "list",
      "--master",
      master.address,
    ]);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(
      /^error: master at 127\.0\.0\.1:\d+ serves TLS, and the call did not use it; pass --tls-ca with the cluster CA/,
    );

    // A run dialling the TLS agent by address without TLS fails at once
    // saying so, instead of retrying an "agent lost".
    const flowDir = tempDir();
    const listed = JSON.parse(list.stdout) as Array<{ address: string }>;
    const flowFile = path.join(flowDir, "flow.sloth");
    fs.writeFileSync(
      flowFile,
      `local t = task("t"):delegate_to({ address = "${listed[0]!.address}" }):retries(3):command("echo hi")\nworkflow.define("w"):tasks({ t })\n`,
    );
    const plainRun = await runCli(
      ["--data-dir", master.dataDir, "run", flowFile, "--no-history", "--master", master.address],
      { cwd: flowDir },
    );
    expect(plainRun.code).toBe(1);
    expect(plainRun.stdout).toMatch(
      /t: failed in \S+: agent at 127\.0\.0\.1:\d+ serves TLS, and the call did not use it; pass --tls-ca/,
    );
    expect(plainRun.stdout).not.toMatch(/retrying|agent lost/);

    const noClientCert = await runCli([
      "--data-dir",
      master.dataDir,
      "agent",
      "list",
      "--master",
      master.address,
      "--tls-ca",
      file("ca.crt"),
    ]);
    expect(noClientCert.code).toBe(1);
    expect(noClientCert.stderr).toMatch(
      /error: cannot reach master at 127\.0\.0\.1:\d+: .*--tls-cert/,
    );
  });

  it("names a certificate that does not cover the address", async () => {
    const master = await spawnMaster({ args: tlsArgs("wrong-host") });
    const r = await runCli([
      "--data-dir",
      master.dataDir,
      "agent",
      "list",
      "--master",
      master.address,
      ...tlsArgs("operator"),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /error: cannot reach master at 127\.0\.0\.1:\d+: its certificate does not cover the address 127\.0\.0\.1:\d+ .*; issue a certificate with that address as a SAN: `sloth-runner ca issue NAME --san 127\.0\.0\.1`/,
    );
  });

  it("tells an untrusted certificate apart", async () => {
    const master = await spawnMaster({
      args: ["--tls-cert", file("master.crt"), "--tls-key", file("master.key")],
    });
    const r = await runCli([
      "--data-dir",
      master.dataDir,
      "agent",
      "list",
      "--master",
      master.address,
    ]);
    expect(r.code).toBe(1);
    const other = tempDir();
    await runCli(["ca", "init", "--dir", other]);
    const wrongCa = await runCli([
      "--data-dir",
      master.dataDir,
      "agent",
      "list",
      "--master",
      master.address,
      "--tls-ca",
      path.join(other, "ca.crt"),
    ]);
    expect(wrongCa.stderr).toMatch(
      /its certificate is not trusted .*; pass the cluster CA with --tls-ca/,
    );
  });

  it("warns an agent whose certificate does not cover the address the master dials", async () => {
    const master = await spawnMaster({ args: tlsArgs("master") });
    const agent = await spawnAgent({
      name: "wrong-host",
      master: master.address,
      tokenFile: path.join(master.dataDir, "master", "token"),
      args: tlsArgs("wrong-host"),
    });
    await agent.proc.waitForOutput(/cannot reach this agent/);
    const log = agent.proc.stdout() + agent.proc.stderr();
    expect(log).toMatch(
      /registered with master at 127\.0\.0\.1:\d+, but the master cannot reach this agent at 127\.0\.0\.1:\d+/,
    );
    expect(log).toMatch(/`sloth-runner ca issue wrong-host --san 127\.0\.0\.1`/);
    // The same through `sloth-runner agent start`, as a warning line.
    const viaCli = await spawnAgent({
      name: "wrong-host-2",
      master: master.address,
      tokenFile: path.join(master.dataDir, "master", "token"),
      args: tlsArgs("wrong-host"),
      via: "cli",
    });
    await viaCli.proc.waitForOutput(/warning: the master cannot reach/);
    expect(viaCli.proc.stderr()).toMatch(
      /warning: the master cannot reach this agent at 127\.0\.0\.1:\d+: .*not in the cert's list; issue this agent a certificate with that address as a SAN: `sloth-runner ca issue wrong-host-2 --san 127\.0\.0\.1`/,
    );
  });

  it("refuses agents that do not serve TLS when the master does", async () => {
    const master = await spawnMaster({
      args: ["--tls-cert", file("master.crt"), "--tls-key", file("master.key")],
    });
    const token = fs.readFileSync(path.join(master.dataDir, "master", "token"), "utf8").trim();
    const conn = connect({
      address: master.address,
      token,
      tls: { ca: fs.readFileSync(file("ca.crt")) },
    });
    try {
      const err = await masterClient(conn)
        .registerAgent({
          name: "plain",
          port: 1,
          reportAddress: "127.0.0.1:1",
          identitySecret: crypto.randomBytes(32),
        })
        .catch((e: unknown) => fromConnectError(e, { kind: "master", address: master.address }));
      expect(String((err as Error).message)).toBe(
        "master refuses agent 'plain': the agent does not serve TLS",
      );
    } finally {
      conn.close();
    }
  });

  it("rejects incomplete TLS flags clearly", async () => {
    const r = await runCli([
      "--data-dir",
      tempDir(),
      "master",
      "start",
      "--port",
      "0",
      "--tls-cert",
      file("master.crt"),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      "error: --tls-cert needs --tls-key; give the certificate and its private key together",
    );
    const missing = await runCli([
      "--data-dir",
      tempDir(),
      "master",
      "start",
      "--port",
      "0",
      "--tls-cert",
      "/nope.crt",
      "--tls-key",
      "/nope.key",
    ]);
    expect(missing.stderr.trim()).toMatch(
      /^error: cannot read certificate \/nope\.crt: no such file; check the --tls-\* paths/,
    );
    const noSan = await runCli(["ca", "issue", "x", "--dir", caDir]);
    expect(noSan.code).toBe(1);
    expect(noSan.stderr).toMatch(/cannot issue a certificate for 'x': no --san given/);
    const both = await runCli(["ca", "issue", "y", "--dir", caDir, "--client", "--san", "h"]);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/cannot issue a client certificate for 'y' with --san/);
  });
});
