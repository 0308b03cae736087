import { execFile } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, expect, it } from "vitest";
import { tempDir } from "../test-support/temp.js";

const PACKAGE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const TSX = createRequire(path.join(PACKAGE, "../../package.json")).resolve("tsx");
const tmp = tempDir();
afterAll(() => tmp.cleanup());

// A resolve hook records every specifier the process loads.
const HOOK = `
import fs from "node:fs";
export async function resolve(specifier, context, next) {
  fs.appendFileSync(process.env.SPECIFIERS_LOG, specifier + "\\n");
  return next(specifier, context);
}`;

it("openState users never load Connect or the generated protocol code", async () => {
  const log = path.join(tmp.dir, "specifiers.txt");
  const hook = path.join(tmp.dir, "hook.mjs");
  const register = path.join(tmp.dir, "register.mjs");
  const script = path.join(tmp.dir, "use.mjs");
  fs.writeFileSync(hook, HOOK);
  fs.writeFileSync(
    register,
    `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(hook).href)});\n`,
  );
  const entry = pathToFileURL(path.join(PACKAGE, "src/index.ts")).href;
  fs.writeFileSync(
    script,
    `const { openState } = await import(${JSON.stringify(entry)});
const s = await openState({ path: ${JSON.stringify(path.join(tmp.dir, "s.db"))} });
await s.set("k", 1);
await s.close();
console.log("ok");`,
  );
  const r = await promisify(execFile)(
    process.execPath,
    ["--import", pathToFileURL(TSX).href, "--import", pathToFileURL(register).href, script],
    { encoding: "utf8", env: { ...process.env, SPECIFIERS_LOG: log }, timeout: 30_000 },
  );
  expect(r.stdout).toBe("ok\n");
  const loaded = fs.readFileSync(log, "utf8").split("\n");
  expect(loaded).toContain("better-sqlite3");
  expect(loaded.filter((s) => /@connectrpc|@sloth\/(client|proto)|remote\//.test(s))).toEqual([]);
}, 60_000);
