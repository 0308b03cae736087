import fs from "node:fs";
import path from "node:path";
import { cleanup, runCli, tempDir } from "@sloth/testkit";
import { afterEach, describe, expect, it } from "vitest";

afterEach(cleanup);

// `master list` in its plain forms is answered without the full command line;
// `--debug` (or any flag the fast path does not know) takes the full one.
describe("sloth-runner master list, fast and full", () => {
  it("prints the same text and JSON both ways", async () => {
    const dir = tempDir();
    const cli = (...args: string[]) => runCli(["--data-dir", dir, ...args]);
    expect((await cli("master", "add", "prod", "10.0.0.1:50053", "-d", "Production")).code).toBe(0);
    const tls = ["--tls-ca", "/etc/sloth/ca.pem", "--tls-cert", "/etc/sloth/c.pem"];
    expect((await cli("master", "add", "lab", "10.0.0.9:50053", ...tls)).code).toBe(0);
    for (const extra of [[], ["--json"]]) {
      const fast = await cli("master", "list", ...extra);
      const full = await cli("master", "list", "--debug", ...extra);
      expect(fast).toEqual(full);
      expect(fast.code).toBe(0);
      expect(fast.stdout).toContain("prod");
      expect(fast.stdout).toContain("lab");
    }
    const viaEquals = await runCli(["master", "ls", `--data-dir=${dir}`, "--json"]);
    expect(JSON.parse(viaEquals.stdout).map((m: { name: string }) => m.name)).toEqual([
      "prod",
      "lab",
    ]);
  });

  it("a data directory without masters.db is set up by the full command line", async () => {
    const dir = path.join(tempDir(), "fresh");
    const r = await runCli(["master", "list", "--data-dir", dir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^No masters registered/);
    expect(fs.existsSync(path.join(dir, "masters.db"))).toBe(true);
  });

  it("a masters.db that is not a database fails with one line either way, and is left as it was", async () => {
    const dir = tempDir();
    const db = path.join(dir, "masters.db");
    fs.writeFileSync(db, "not a database\n".repeat(100));
    const before = fs.readFileSync(db);
    const r = await runCli(["master", "list", "--data-dir", dir]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: .*not a (SQLite )?database/);
    expect(fs.readFileSync(db).equals(before)).toBe(true);
  });
});
