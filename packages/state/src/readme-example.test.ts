import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, expect, it } from "vitest";
import { tempDir } from "../test-support/temp.js";

const PACKAGE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const ROOT = path.resolve(PACKAGE, "../..");
// The example runs in a temp dir, so find tsx from the repository root.
const TSX = createRequire(path.join(ROOT, "package.json")).resolve("tsx");
const tmp = tempDir();
// Inside the package, so `@sloth/state` resolves to itself like an installed package.
const script = path.join(PACKAGE, `.readme-example-${process.pid}.ts`);
afterAll(() => {
  fs.rmSync(script, { force: true });
  tmp.cleanup();
});

it("runs the README example and prints what its comments say", () => {
  const readme = fs.readFileSync(path.join(PACKAGE, "README.md"), "utf8");
  const code = /## Example\n\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(code).toBeDefined();
  const expected = [...(code ?? "").matchAll(/console\.log\(.*\); \/\/ (.*)$/gm)].map((m) => m[1]);
  expect(expected.length).toBeGreaterThanOrEqual(4);
  fs.writeFileSync(script, code ?? "");
  // Plain JavaScript: it must parse as an ES module on the Node versions supported.
  const mjs = path.join(tmp.dir, "example.mjs");
  fs.writeFileSync(mjs, code ?? "");
  const check = spawnSync(process.execPath, ["--check", mjs], { encoding: "utf8" });
  expect(check.stderr).toBe("");
  const r = spawnSync(
    process.execPath,
    ["--import", pathToFileURL(TSX).href, "--conditions=source", script],
    { cwd: tmp.dir, encoding: "utf8", timeout: 30_000 },
  );
  expect(r.stderr).toBe("");
  expect(r.stdout.trimEnd().split("\n")).toEqual(expected);
  expect(fs.existsSync(path.join(tmp.dir, "state.db"))).toBe(true);
}, 60_000);
