import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { openMastersStore } from "@sloth/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { runFast } from "./fast.js";

let dir: string;
let out: string[];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-fast-"));
  out = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
});
afterEach(() => {
  vi.restoreAllMocks();
  fs.rmSync(dir, { recursive: true, force: true });
});

function addMasters(): void {
  const s = openMastersStore(path.join(dir, "masters.db"));
  s.add({ name: "prod", address: "10.0.0.1:50053" });
  s.add({ name: "dev", address: "127.0.0.1:50053", description: "laptop" });
  s.close();
}

describe("runFast", () => {
  it("lists the masters of a migrated masters.db, oldest first, as JSON", () => {
    addMasters();
    expect(runFast(["master", "list", "--json", "--data-dir", dir])).toBe(true);
    const listed = JSON.parse(out.join("")) as Array<{ name: string; default: boolean }>;
    expect(listed.map((m) => [m.name, m.default])).toEqual([
      ["prod", true],
      ["dev", false],
    ]);
  });

  it("lists masters added within one millisecond in the order they were added", () => {
    const s = openMastersStore(path.join(dir, "masters.db"));
    const names = ["zeta", "alpha", "mid", "beta", "omega", "delta"];
    // All in one millisecond, as a fast machine or a script does.
    vi.spyOn(Date, "now").mockReturnValue(1_700_000_000_000);
    for (const [i, name] of names.entries()) s.add({ name, address: `10.0.0.${i + 1}:50053` });
    expect(s.list().map((m) => m.name)).toEqual(names);
    s.close();
    expect(runFast(["master", "list", "--json", "--data-dir", dir])).toBe(true);
    expect((JSON.parse(out.join("")) as Array<{ name: string }>).map((m) => m.name)).toEqual(names);
  });

  it("declines, printing nothing, whatever it does not handle itself", () => {
    addMasters();
    for (const argv of [
      ["master", "list", "--data-dir", dir, "--verbose"],
      ["master", "show", "prod", "--data-dir", dir],
      ["master", "list", "--data-dir"],
      ["master", "list", "--json", "--json", "--data-dir", dir],
      ["agent", "list", "--data-dir", dir],
      ["master", "list", "--data-dir", path.join(dir, "missing")],
    ])
      expect(runFast(argv)).toBe(false);
    expect(out).toEqual([]);
  });
});
