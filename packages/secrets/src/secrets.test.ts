import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isSecretsError, MAX_VERSIONS, openSecretsStore, redactor } from "./index.js";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-secrets-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const fileKey = () => ({ file: path.join(dir, "secrets.key") });
const open = (key: { file: string } | { passphrase: string } | undefined = fileKey()) =>
  openSecretsStore({ path: path.join(dir, "secrets.db"), key });

describe("secrets store", () => {
  it("seals values, keeps versions per environment, and lists no value", () => {
    const s = open();
    expect(s.set("db_password", "hunter2-prod", { env: "production" }).version).toBe(1);
    expect(s.set("db_password", "hunter3-prod", { env: "production" }).version).toBe(2);
    s.set("db_password", "staging-pass");
    expect(s.get("db_password", { env: "production" })).toBe("hunter3-prod");
    expect(s.get("db_password", { env: "production", version: 1 })).toBe("hunter2-prod");
    expect(s.get("db_password")).toBe("staging-pass");
    const listed = s.list();
    expect(listed.map((i) => [i.env, i.name, i.version, i.versions])).toEqual([
      ["default", "db_password", 1, 1],
      ["production", "db_password", 2, 2],
    ]);
    expect(JSON.stringify(listed)).not.toContain("hunter");
    s.close();
    // Nothing readable on disk: the values are sealed, the key file is private.
    const raw = fs.readFileSync(path.join(dir, "secrets.db"));
    expect(raw.includes(Buffer.from("hunter"))).toBe(false);
    expect(fs.statSync(path.join(dir, "secrets.key")).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, "secrets.db")).mode & 0o777).toBe(0o600);
  });

  it("keeps the last versions only, and audits every access without a value", () => {
    const s = open();
    for (let i = 1; i <= MAX_VERSIONS + 3; i++) s.set("token", `value-${i}`);
    expect(s.list()[0]?.versions).toBe(MAX_VERSIONS);
    expect(() => s.get("token", { version: 1 })).toThrow(/no secret 'token' version 1/);
    s.get("token");
    expect(s.all("default", "run of flow.sloth").get("token")).toBe(`value-${MAX_VERSIONS + 3}`);
    s.delete("token");
    const trail = s.audit();
    expect(trail.slice(0, 3).map((a) => a.action)).toEqual(["delete", "use", "get"]);
    expect(trail[1]?.detail).toBe("1 secret(s) for run of flow.sloth");
    expect(trail.every((a) => a.actor.includes("@") && a.pid === process.pid)).toBe(true);
    expect(JSON.stringify(trail)).not.toContain("value-");
    expect(() => s.get("token")).toThrow(/no secret 'token' in environment 'default'/);
    s.close();
  });

  it("refuses a wrong or missing key, naming the fix, and loses nothing", () => {
    open().set("api_key", "abcd-1234").valueOf();
    const wrong = path.join(dir, "other.key");
    fs.writeFileSync(wrong, `${Buffer.alloc(32, 7).toString("base64")}\n`);
    const e1 = catchError(() => open({ file: wrong }).get("api_key"));
    expect(isSecretsError(e1, "SLOTH_SECRETS_KEY_WRONG")).toBe(true);
    expect((e1 as Error).message).toContain("other.key does not open these secrets");
    const e2 = catchError(() => open({ file: path.join(dir, "gone.key") }).get("api_key"));
    expect(isSecretsError(e2, "SLOTH_SECRETS_KEY_MISSING")).toBe(true);
    const e3 = catchError(() => open({ passphrase: "guess" }).get("api_key"));
    expect(isSecretsError(e3, "SLOTH_SECRETS_KEY_WRONG")).toBe(true);
    // Listing and auditing need no key.
    expect(
      open(undefined)
        .list()
        .map((i) => i.name),
    ).toEqual(["api_key"]);
    expect(open().get("api_key")).toBe("abcd-1234");
  });

  it("works with a passphrase, and rotates keys: the old one stops working", () => {
    const s = open({ passphrase: "correct horse battery staple" });
    s.set("a", "alpha-value");
    s.set("b", "beta-value", { env: "prod" });
    s.close();
    const t = open({ passphrase: "correct horse battery staple" });
    expect(t.rotateKey(fileKey())).toBe(2);
    t.close();
    expect(open().get("a")).toBe("alpha-value");
    expect(open().get("b", { env: "prod" })).toBe("beta-value");
    expect(() => open({ passphrase: "correct horse battery staple" }).get("a")).toThrow(
      /does not open/,
    );
    // Rotating a key file again: the file is replaced once the database holds the new sealing.
    const before = fs.readFileSync(fileKey().file, "utf8");
    expect(open().rotateKey(fileKey())).toBe(2);
    expect(fs.readFileSync(fileKey().file, "utf8")).not.toBe(before);
    expect(fs.existsSync(`${fileKey().file}.new`)).toBe(false);
    expect(open().get("a")).toBe("alpha-value");
    expect(
      open()
        .audit({ limit: 2 })
        .map((a) => a.action),
    ).toEqual(["get", "rotate-key"]);
  });

  it("finds the new key of a rotation interrupted between commit and rename", () => {
    open().set("x", "x-value-1");
    // What a rotation leaves when killed after its commit: the database
    // sealed under the key still waiting beside the old file.
    const key = fileKey().file;
    const old = fs.readFileSync(key, "utf8");
    open().rotateKey(fileKey());
    const rotated = fs.readFileSync(key, "utf8");
    fs.writeFileSync(`${key}.new`, rotated);
    fs.writeFileSync(key, old);
    expect(open().get("x")).toBe("x-value-1");
    expect(fs.readFileSync(key, "utf8")).toBe(rotated);
  });

  it("detects a value moved to another row or altered", () => {
    const s = open();
    s.set("one", "first-secret");
    s.set("two", "second-secret");
    s.close();
    const db = new Database(path.join(dir, "secrets.db"));
    const row = db
      .prepare("SELECT nonce, sealed FROM secret_versions WHERE name = 'one'")
      .get() as {
      nonce: Buffer;
      sealed: Buffer;
    };
    db.prepare("UPDATE secret_versions SET nonce = ?, sealed = ? WHERE name = 'two'").run(
      row.nonce,
      row.sealed,
    );
    db.close();
    const e = catchError(() => open().get("two"));
    expect(isSecretsError(e, "SLOTH_SECRET_CORRUPT")).toBe(true);
    expect((e as Error).message).not.toContain("first-secret");
  });

  it("refuses bad names, empty and oversize values", () => {
    const s = open();
    expect(() => s.set("bad name", "v")).toThrow(/invalid secret name "bad name"/);
    expect(() => s.set("ok", "", { env: "prod" })).toThrow(/the value is empty/);
    expect(() => s.set("ok", "v", { env: "../x" })).toThrow(/invalid environment/);
    expect(() => s.set("ok", "x".repeat(70_000))).toThrow(/over the limit/);
    expect(s.list()).toEqual([]);
  });

  it("is shared by processes: one sets, another reads", () => {
    open().set("shared", "from-this-process");
    const script = `
      const { openSecretsStore } = await import(${JSON.stringify(new URL("./index.ts", import.meta.url).href)});
      const s = openSecretsStore({ path: ${JSON.stringify(path.join(dir, "secrets.db"))}, key: { file: ${JSON.stringify(fileKey().file)} } });
      process.stdout.write(s.get("shared")); s.set("back", "from-the-child");`;
    const r = spawnSync(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      {
        encoding: "utf8",
      },
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("from-this-process");
    expect(open().get("back")).toBe("from-the-child");
  });
});

describe("redactor", () => {
  it("masks values in text and nested values, longest first, short ones never", () => {
    const r = redactor(["hunter2-long", "hunter2", "abc"]);
    expect(r.text("pass=hunter2-long and hunter2, abc")).toBe("pass=*** and ***, abc");
    expect(r.value({ a: ["x hunter2 y", 3], b: { hunter2: true } })).toEqual({
      a: ["x *** y", 3],
      b: { "***": true },
    });
    expect(redactor([]).empty).toBe(true);
  });

  it("masks the forms a value takes in JSON and without its surrounding white space", () => {
    const r = redactor(['line1\npa"ss\\word\n']);
    expect(r.text(JSON.stringify({ k: 'line1\npa"ss\\word\n' }))).toBe('{"k":"***"}');
    expect(r.text('got line1\npa"ss\\word!')).toBe("got ***!");
  });

  it("masks a value split across the pieces of a stream, holding back only what may begin one", () => {
    const r = redactor(["S3cr3tVALUE"]);
    const s = r.stream();
    expect(s.push("xxxx S3cr")).toBe("xxxx ");
    expect(s.push("3tVA")).toBe("");
    expect(s.push("LUE and S")).toBe("*** and ");
    expect(s.push("ome more")).toBe("Some more");
    expect(s.push("tail S3c")).toBe("tail ");
    expect(s.flush()).toBe("S3c");
    expect(s.flush()).toBe("");
  });
});

function catchError(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("no error");
}
