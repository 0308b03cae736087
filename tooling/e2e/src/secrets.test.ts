import fs from "node:fs";
import path from "node:path";
import { CLI_BIN, cleanup, runCli, spawnNode, tempDir } from "@sloth/testkit";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";

// `sloth-runner secrets ...` and `secrets.get` in runs, against the built
// binary: values typed in on standard input, sealed in a private data dir,
// read by a real run that masks them in its output and its history.
let dataDir: string;
let dir: string;
beforeEach(() => {
  dataDir = tempDir("sloth-secrets-data-");
  dir = tempDir("sloth-secrets-files-");
});
afterEach(cleanup);
afterAll(cleanup);

const ENV = { CI: "", SLOTH_RUNNER_SECRETS_KEY: "", SLOTH_RUNNER_SECRETS_ENV: "" };
const sloth = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runCli(["--data-dir", dataDir, ...args], { env: { ...ENV, ...env }, cwd: dir });

/** `secrets set` with `value` piped in, as `printf %s value | sloth-runner secrets set ...`. */
async function setSecret(args: string[], value: string, env: NodeJS.ProcessEnv = {}) {
  const p = spawnNode(CLI_BIN, ["--data-dir", dataDir, "secrets", "set", ...args], {
    env: { ...ENV, ...env },
    cwd: dir,
    stdin: "pipe",
  });
  p.child.stdin?.end(value);
  return { code: await p.exited, stdout: p.stdout(), stderr: p.stderr() };
}

describe("secrets", () => {
  it("sets from standard input, lists without values, reads versions, deletes, and audits", async () => {
    expect(await setSecret(["db_password"], "first-pass\n")).toEqual({
      code: 0,
      stdout: "Secret 'db_password' set in environment 'default' (version 1)\n",
      stderr: "",
    });
    expect((await setSecret(["db_password"], "second-pass")).code).toBe(0);
    expect((await setSecret(["db_password", "--env", "production"], "prod-pass")).code).toBe(0);
    const list = await sloth(["secrets", "list", "--all-envs", "--json"]);
    expect(list.code).toBe(0);
    const items = JSON.parse(list.stdout) as { env: string; name: string; version: number }[];
    expect(items.map((i) => [i.env, i.name, i.version])).toEqual([
      ["default", "db_password", 2],
      ["production", "db_password", 1],
    ]);
    expect(list.stdout).not.toContain('pass"');
    // Piped: the value as it is, no newline (`$(...)`, files).
    expect(await sloth(["secrets", "get", "db_password"])).toEqual({
      code: 0,
      stdout: "second-pass",
      stderr: "",
    });
    expect((await sloth(["secrets", "get", "db_password", "--at-version", "1"])).stdout).toBe(
      "first-pass",
    );
    expect((await sloth(["secrets", "get", "db_password", "--env", "production"])).stdout).toBe(
      "prod-pass",
    );
    // Nothing readable on disk.
    for (const f of ["secrets.db", "secrets.key"]) {
      expect(fs.statSync(path.join(dataDir, f)).mode & 0o777).toBe(0o600);
      expect(fs.readFileSync(path.join(dataDir, f)).includes("prod-pass")).toBe(false);
    }
    const refused = await sloth(["secrets", "delete", "db_password", "--env", "production"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("without confirmation; pass --yes");
    expect(
      (await sloth(["secrets", "rm", "db_password", "--env", "production", "--yes"])).stdout,
    ).toBe("Secret 'db_password' deleted from environment 'production'\n");
    const audit = JSON.parse((await sloth(["secrets", "audit", "--json"])).stdout) as {
      action: string;
      env: string;
      version?: number;
    }[];
    expect(audit.map((a) => a.action)).toEqual([
      "delete",
      "get",
      "get",
      "get",
      "set",
      "set",
      "set",
    ]);
    expect(JSON.stringify(audit)).not.toContain("-pass");
  });

  it("masks the values a run reads in its output, its JSON events and its history", async () => {
    expect((await setSecret(["api_token"], "tok-7f3a9c21")).code).toBe(0);
    expect((await setSecret(["api_token", "--env", "staging"], "stg-55aa11")).code).toBe(0);
    fs.writeFileSync(
      path.join(dir, "flow.sloth"),
      `local use = task("use"):command(function()
  local t = secrets.get("api_token")
  log.info("token " .. t)
  local r = exec.run("printf 'curl -H %s' \\"$T\\"", { env = { T = t } })
  fs.write("t.txt", t)
  return true, r.stdout, { header = "Bearer " .. t, env = secrets.env }
end)
local shell = task("shell"):depends_on({ use }):command("echo shell sees $(cat t.txt)")
workflow.define("w"):tasks({ use, shell })
`,
    );
    const text = await sloth(["run", "flow.sloth"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("use | INFO token ***");
    expect(text.stdout).toContain("use: succeeded");
    expect(text.stdout).toContain("(curl -H ***)");
    expect(text.stdout).toContain("shell | shell sees ***");
    expect(text.stdout + text.stderr).not.toContain("tok-7f3a9c21");
    const json = await sloth(["run", "flow.sloth", "--secrets-env", "staging", "-o", "json"]);
    expect(json.code).toBe(0);
    expect(json.stdout).not.toContain("stg-55aa11");
    expect(json.stdout).toContain('"header":"Bearer ***"');
    expect(json.stdout).toContain('"env":"staging"');
    const history = Buffer.concat(
      ["history.db", "history.db-wal"]
        .map((f) => path.join(dataDir, f))
        .filter((f) => fs.existsSync(f))
        .map((f) => fs.readFileSync(f)),
    );
    expect(history.includes("tok-7f3a9c21")).toBe(false);
    expect(history.includes("stg-55aa11")).toBe(false);
    const logs = await sloth([
      "runs",
      "logs",
      JSON.parse(json.stdout.trim().split("\n").at(-1) as string).workflows[0].runId,
    ]);
    expect(logs.stdout).toContain("INFO token ***");
    // Each run's reading is in the audit trail.
    const audit = JSON.parse((await sloth(["secrets", "audit", "--json", "--limit", "2"])).stdout);
    expect(audit.map((a: { action: string; env: string }) => [a.action, a.env])).toEqual([
      ["use", "staging"],
      ["use", "default"],
    ]);
  });

  it("masks values split between output pieces, in JSON, in hook failures; refuses them at a file's top level", async () => {
    expect((await setSecret(["tok"], "S3cr3tVALUE")).code).toBe(0);
    expect((await setSecret(["multi"], 'line1-AAAA\npa"ss\\word')).code).toBe(0);
    fs.writeFileSync(
      path.join(dir, "flow.sloth"),
      `local a = task("a"):command(function()
  exec.run("head -c 65530 /dev/zero | tr -c x x; echo " .. secrets.get("tok"), { stream = true })
  log.info({ k = secrets.get("multi") })
  print(json.encode({ p = secrets.get("multi") }))
  return true
end)
local sh = task("sh"):command("printf 'S3cr3t'; sleep 0.3; printf 'VALUE\\n'")
local h = task("hook"):command("false"):on_failure(function() error("onfail " .. secrets.get("tok")) end)
workflow.define("w"):tasks({ a, sh, h })
`,
    );
    for (const out of ["text", "json"]) {
      const r = await sloth(["run", "flow.sloth", "-o", out]);
      expect(r.code).toBe(1);
      const all = r.stdout + r.stderr;
      for (const leak of ["S3cr3t", "VALUE", "AAAA", "ss\\\\word"]) expect(all).not.toContain(leak);
      expect(all).toContain("onfail ***");
      if (out === "text") {
        expect(r.stdout).toContain("sh | ***\n");
        expect(r.stdout).toContain('a | INFO {"k":"***"}');
        expect(r.stdout).toContain('a | {"p":"***"}');
      }
    }
    const history = Buffer.concat(
      ["history.db", "history.db-wal"]
        .map((f) => path.join(dataDir, f))
        .filter((f) => fs.existsSync(f))
        .map((f) => fs.readFileSync(f)),
    );
    expect(history.includes("S3cr3t")).toBe(false);
    fs.writeFileSync(
      path.join(dir, "top.sloth"),
      `print("top " .. secrets.get("tok"))\nworkflow.define("w"):tasks({ task("x"):command("true") })\n`,
    );
    const top = await sloth(["run", "top.sloth"]);
    expect(top.code).not.toBe(0);
    expect(top.stderr).toContain(
      "secrets are read inside a task's function, not at a file's top level",
    );
    expect(top.stdout + top.stderr).not.toContain("S3cr3t");
  });

  it("masks values in the events and snapshots a stack records", async () => {
    expect((await setSecret(["tok"], "S3cr3tVALUE")).code).toBe(0);
    fs.writeFileSync(
      path.join(dir, "stk.sloth"),
      `workflow.define("w"):tasks({ task("d"):command(function()
  stack.event("deployed with " .. secrets.get("tok"))
  stack.snapshot("before " .. secrets.get("tok"))
  return true
end) })
`,
    );
    const r = await sloth(["run", "prod", "-f", "stk.sloth"]);
    expect(r.code).toBe(0);
    const events = await sloth(["stack", "events", "prod", "--json"]);
    expect(events.stdout).toContain("deployed with ***");
    const snaps = await sloth(["stack", "snapshot", "list", "prod", "--json"]);
    expect(snaps.stdout).toContain("before ***");
    const db = fs.readFileSync(path.join(dataDir, "stacks.db"));
    expect(db.includes("S3cr3t")).toBe(false);
  });

  it("runs what needs no secret when the secrets cannot be read, saying why", async () => {
    fs.writeFileSync(path.join(dataDir, "secrets.db"), "garbage");
    fs.writeFileSync(
      path.join(dir, "plain.sloth"),
      `workflow.define("w"):tasks({ task("x"):command("echo hi") })\n`,
    );
    const r = await sloth(["run", "plain.sloth"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      /^notice: secrets are unavailable to this run: cannot open the secrets database .*not a SQLite database/,
    );
    expect(fs.readFileSync(path.join(dataDir, "secrets.db"), "utf8")).toBe("garbage");
  });

  it("refuses bad input with one line and a hint, and loses nothing", async () => {
    const argv = await sloth(["secrets", "set", "api_token", "hunter2"]);
    expect(argv.code).toBe(2);
    expect(argv.stderr).toMatch(
      /^error: a secret's value is not taken on the command line.*--from-file FILE\n$/,
    );
    expect(fs.existsSync(path.join(dataDir, "secrets.db"))).toBe(false);
    const none = await sloth(["secrets", "get", "x"]);
    expect([none.code, none.stderr]).toEqual([
      1,
      "error: no secret has been set yet; add one with `sloth-runner secrets set NAME` (the value is read from standard input or a prompt)\n",
    ]);
    expect((await setSecret(["bad name"], "v")).stderr).toMatch(
      /^error: invalid secret name "bad name"/,
    );
    expect((await setSecret(["empty"], "\n")).stderr).toMatch(
      /^error: cannot set secret 'empty': the value is empty/,
    );
    expect((await setSecret(["keep"], "kept-value")).code).toBe(0);
    // The key file replaced by another: refused, nothing overwritten.
    const key = path.join(dataDir, "secrets.key");
    const original = fs.readFileSync(key);
    fs.writeFileSync(key, `${Buffer.alloc(32, 1).toString("base64")}\n`);
    const wrong = await sloth(["secrets", "get", "keep"]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(
      /^error: .*secrets\.key does not open these secrets: they were sealed with another key; use the key/,
    );
    expect(wrong.stderr.split("\n")).toHaveLength(2);
    // A run then says why secrets.get fails, and runs what does not need them.
    fs.writeFileSync(
      path.join(dir, "flow.sloth"),
      `workflow.define("w"):tasks({ task("a"):command(function() return true, secrets.get("keep") end) })`,
    );
    const run = await sloth(["run", "flow.sloth"]);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('secrets.get("keep"): ');
    expect(run.stdout).toContain("does not open these secrets");
    fs.writeFileSync(key, original);
    expect((await sloth(["secrets", "get", "keep"])).stdout).toBe("kept-value");
    const badEnv = await sloth(["run", "flow.sloth", "--secrets-env", "../etc"]);
    expect(badEnv.code).not.toBe(0);
    expect(badEnv.stderr).toMatch(/^error: invalid environment "..\/etc"/);
  });

  it("rotates the key, and a passphrase seals instead of a key file", async () => {
    const pass = { SLOTH_RUNNER_SECRETS_KEY: "correct horse battery staple" };
    expect((await setSecret(["a"], "alpha-1234", pass)).code).toBe(0);
    expect(fs.existsSync(path.join(dataDir, "secrets.key"))).toBe(false);
    expect((await sloth(["secrets", "get", "a"], pass)).stdout).toBe("alpha-1234");
    const noKey = await sloth(["secrets", "get", "a"]);
    expect(noKey.stderr).toContain("is missing; restore that file");
    // From the passphrase to a key file.
    const rotated = await sloth(["secrets", "rotate-key"], pass);
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toContain("1 secret value(s) sealed again under a new key");
    expect((await sloth(["secrets", "get", "a"])).stdout).toBe("alpha-1234");
    expect((await sloth(["secrets", "get", "a"], pass)).stderr).toContain(
      "does not open these secrets",
    );
  });
});
