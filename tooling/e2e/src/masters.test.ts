import fs from "node:fs";
import path from "node:path";
import { cleanup, runCli, spawnMaster, tempDir, writeToken } from "@sloth/testkit";
import { afterEach, describe, expect, it } from "vitest";

afterEach(cleanup);

describe("sloth-runner master add/list/select/show/update/remove", () => {
  it("manages named masters as the seed describes", async () => {
    const dir = tempDir();
    const cli = (...args: string[]) => runCli(["--data-dir", dir, ...args]);
    expect((await cli("master", "list")).stdout).toBe(
      "No masters registered; add one with `sloth-runner master add NAME HOST:PORT`\n",
    );
    expect(
      (
        await cli(
          "master",
          "add",
          "production",
          "192.168.1.29:50053",
          "--description",
          "Production master server",
        )
      ).stdout,
    ).toBe("Master 'production' added (192.168.1.29:50053) and set as default\n");
    expect(
      (await cli("master", "add", "staging", "10.0.0.5:50053", "-d", "Staging environment")).stdout,
    ).toBe("Master 'staging' added (10.0.0.5:50053)\n");
    const dup = await cli("master", "add", "staging", "10.0.0.6:50053");
    expect(dup.code).toBe(1);
    expect(dup.stderr).toBe(
      "error: master 'staging' already exists; choose another name, or run `sloth-runner master update staging ADDRESS`\n",
    );

    const list = await cli("master", "list");
    expect(list.code).toBe(0);
    expect(list.stdout.replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/g, "<time>")).toBe(
      [
        "# Registered Master Servers",
        "",
        "⭐ production (default)",
        "   Address: 192.168.1.29:50053",
        "   Description: Production master server",
        "   Created: <time>",
        "",
        "   staging",
        "   Address: 10.0.0.5:50053",
        "   Description: Staging environment",
        "   Created: <time>",
        "",
        "Total: 2 master(s)",
        "",
      ].join("\n"),
    );
    const json = JSON.parse((await cli("master", "list", "--json")).stdout) as Array<
      Record<string, unknown>
    >;
    expect(json.map((m) => [m.name, m.default])).toEqual([
      ["production", true],
      ["staging", false],
    ]);

    expect((await cli("master", "select", "staging")).stdout).toBe(
      "Default master is now 'staging' (10.0.0.5:50053)\n",
    );
    expect(JSON.parse((await cli("master", "show", "--json")).stdout)).toMatchObject({
      name: "staging",
      default: true,
    });
    expect(
      (await cli("master", "update", "staging", "10.0.0.6:50053", "-d", "New staging server"))
        .stdout,
    ).toBe("Master 'staging' updated (10.0.0.6:50053)\n");
    // TLS and token files can be set and removed ("") after the fact.
    expect(
      (await cli("master", "update", "staging", "--tls-ca", "ca.crt", "--token-file", "t")).code,
    ).toBe(0);
    const withFiles = JSON.parse((await cli("master", "show", "staging", "--json")).stdout);
    expect(withFiles.tls.ca).toMatch(/\/ca\.crt$/);
    expect(withFiles.tokenFile).toMatch(/\/t$/);
    expect(
      (await cli("master", "update", "staging", "--tls-ca", "", "--token-file", "")).code,
    ).toBe(0);
    const cleared = JSON.parse((await cli("master", "show", "staging", "--json")).stdout);
    expect([cleared.tls.ca, cleared.tokenFile]).toEqual([null, null]);
    const shown = await cli("master", "show", "staging");
    expect(shown.stdout).toMatch(
      /⭐ staging \(default\)\n {3}Address: 10\.0\.0\.6:50053\n {3}Description: New staging server\n/,
    );

    const noTty = await cli("master", "remove", "production");
    expect(noTty.code).toBe(1);
    expect(noTty.stderr).toBe(
      "error: refusing to remove master 'production' without confirmation; pass --yes to confirm when not on a terminal\n",
    );
    const def = await cli("master", "rm", "staging", "--yes");
    expect(def.code).toBe(1);
    expect(def.stderr).toBe(
      "error: cannot delete default master 'staging'. Select a different default first; run `sloth-runner master select OTHER`\n",
    );
    expect((await cli("master", "delete", "production", "--yes")).stdout).toBe(
      "Master 'production' removed\n",
    );
    expect((await cli("master", "remove", "staging", "-y")).stdout).toBe(
      "Master 'staging' removed\n",
    );
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, "masters.db")).mode & 0o777).toBe(0o600);
  });

  it("uses the token file recorded for a master, and never stores the token", async () => {
    const master = await spawnMaster();
    const token = fs.readFileSync(path.join(master.dataDir, "master", "token"), "utf8").trim();
    const dir = tempDir();
    const { file } = writeToken(tempDir(), token);
    await runCli([
      "--data-dir",
      dir,
      "master",
      "add",
      "local",
      master.address,
      "--token-file",
      file,
    ]);
    const r = await runCli(["--data-dir", dir, "agent", "list", "--master", "local", "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([]);
    const db = fs.readFileSync(path.join(dir, "masters.db"));
    expect(db.includes(Buffer.from(token))).toBe(false);
    const show = JSON.parse(
      (await runCli(["--data-dir", dir, "master", "show", "local", "--json"])).stdout,
    );
    expect(show.tokenFile).toBe(file);
  });

  it("creates the master token with mode 0600 on first start and says how to read it", async () => {
    const master = await spawnMaster();
    const tokenFile = path.join(master.dataDir, "master", "token");
    expect(fs.statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(fs.statSync(master.dataDir).mode & 0o777).toBe(0o700);
    const token = fs.readFileSync(tokenFile, "utf8").trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(master.proc.stderr()).toContain(`Show it with: cat ${tokenFile}`);
    expect(master.proc.stderr() + master.proc.stdout()).not.toContain(token);
  });

  it("starts with the seed's short form `sloth-runner master -p PORT` and stops on SIGTERM", async () => {
    const dir = tempDir();
    const { spawnNode, CLI_BIN } = await import("@sloth/testkit");
    const p = spawnNode(CLI_BIN, ["--data-dir", dir, "master", "-p", "0", "--bind", "127.0.0.1"]);
    await p.waitForOutput(/Master listening on 127\.0\.0\.1:\d+/);
    p.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    expect(p.stderr()).toMatch(/master stopped/);
  });

  it("shows the version and help", async () => {
    const v = await runCli(["--version"]);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    const h = await runCli(["--help"]);
    expect(h.stdout).toMatch(/sloth-runner <command>/);
    expect(h.stdout).toMatch(/master/);
    expect(h.stdout).toMatch(/agent/);
  });
});
