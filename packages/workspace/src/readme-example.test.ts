import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, expect, it } from "vitest";
import { cleanupTemp, tempDir } from "../test-support/helpers.js";

const PACKAGE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const ROOT = path.resolve(PACKAGE, "../..");
const TSX = createRequire(path.join(ROOT, "package.json")).resolve("tsx");
// Inside the package, so `@sloth/workspace` resolves to itself like an installed package.
const script = path.join(PACKAGE, `.readme-example-${process.pid}.ts`);
afterAll(() => {
  fs.rmSync(script, { force: true });
  cleanupTemp();
});

it("runs the README example and prints what its comments say", () => {
  const readme = fs.readFileSync(path.join(PACKAGE, "README.md"), "utf8");
  const code = /## Example\n\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(code).toBeDefined();
  const expected = [...(code ?? "").matchAll(/console\.log\(.*\); \/\/ (.*)$/gm)].map((m) => m[1]);
  expect(expected.length).toBeGreaterThanOrEqual(4);
  fs.writeFileSync(script, code ?? "");
  const r = spawnSync(
    process.execPath,
    ["--import", pathToFileURL(TSX).href, "--conditions=source", script],
    { cwd: tempDir(), encoding: "utf8", timeout: 30_000 },
  );
  expect(r.stderr).toBe("");
  expect(r.stdout.trimEnd().split("\n")).toEqual(expected);
}, 60_000);
