import { execFile } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { cleanup, startTestMaster } from "@sloth/testkit";
import { afterAll, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const STATE = path.join(ROOT, "packages/state");
const TSX = createRequire(path.join(ROOT, "package.json")).resolve("tsx");
// Inside @sloth/state, so the import resolves as it would for an installed package.
const script = path.join(STATE, `.readme-network-${process.pid}.ts`);
afterAll(async () => {
  fs.rmSync(script, { force: true });
  await cleanup();
});

it("runs the 'Over the network' example of @sloth/state's README against a master", async () => {
  const tm = await startTestMaster();
  const readme = fs.readFileSync(path.join(STATE, "README.md"), "utf8");
  const code = /## Over the network\n[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  const expected = [...code.matchAll(/console\.log\(.*\); \/\/ (.*)$/gm)].map((m) => m[1]);
  expect(expected.length).toBeGreaterThanOrEqual(3);
  fs.writeFileSync(script, code);
  // Plain JavaScript: it must parse as an ES module on the Node versions supported.
  const mjs = `${script}.mjs`;
  fs.writeFileSync(mjs, code);
  try {
    await promisify(execFile)(process.execPath, ["--check", mjs]);
  } finally {
    fs.rmSync(mjs, { force: true });
  }
  // Asynchronous: the master answering the example runs in this process.
  const r = await promisify(execFile)(
    process.execPath,
    ["--import", pathToFileURL(TSX).href, "--conditions=source", script],
    {
      encoding: "utf8",
      timeout: 30_000,
      env: { ...process.env, SLOTH_RUNNER_MASTER_ADDR: tm.address, SLOTH_RUNNER_TOKEN: tm.token },
    },
  );
  expect(r.stderr).toBe("");
  expect(r.stdout.trimEnd().split("\n")).toEqual(expected);
}, 60_000);
