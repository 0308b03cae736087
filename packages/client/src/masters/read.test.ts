import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readMasters } from "./read.js";
import { openMastersStore } from "./store.js";

let dir: string;
let file: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-read-masters-"));
  file = path.join(dir, "masters.db");
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("readMasters", () => {
  it("reads exactly what the store lists", () => {
    const s = openMastersStore(file);
    s.add({ name: "b-prod", address: "10.0.0.1:50053", tokenFile: "/etc/sloth/token" });
    s.add({
      name: "a-lab",
      address: "10.0.0.2:50053",
      description: "lab",
      tls: { ca: "/ca.pem", cert: "/c.pem", key: "/k.pem" },
    });
    s.select("a-lab");
    const listed = s.list();
    s.close();
    expect(readMasters(file)).toEqual(listed);
  });

  it("gives undefined, writing nothing, for a missing, corrupt or older masters.db", () => {
    expect(readMasters(file)).toBeUndefined();
    expect(fs.existsSync(file)).toBe(false);

    fs.writeFileSync(file, "not a database\n".repeat(100));
    expect(readMasters(file)).toBeUndefined();
    expect(fs.readFileSync(file, "utf8")).toBe("not a database\n".repeat(100));
    fs.rmSync(file);

    openMastersStore(file).close();
    const db = new Database(file);
    db.prepare("UPDATE __drizzle_migrations SET created_at = 1").run();
    db.close();
    expect(readMasters(file)).toBeUndefined();
  });
});
