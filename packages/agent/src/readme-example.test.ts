import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, expect, test } from "vitest";

const pkgDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

test("the README example runs as written", async () => {
  const readme = fs.readFileSync(path.join(pkgDir, "README.md"), "utf8");
  const code = /## Example[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(code).toBeDefined();
  // Inside the package so `@sloth/agent` resolves to itself by name.
  const file = path.join(pkgDir, "test", `.readme-example-${process.pid}.ts`);
  fs.writeFileSync(file, code ?? "");
  cleanups.push(() => fs.rmSync(file, { force: true }));
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-agent-readme-"));
  cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", file], {
    cwd: pkgDir,
    env: {
      ...process.env,
      SLOTH_RUNNER_TOKEN: "readme-token-0123456789",
      SLOTH_RUNNER_DATA_DIR: dataDir,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  cleanups.push(() => child.kill("SIGKILL"));
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const code_ = await new Promise<number | null>((resolve) => child.once("close", resolve));
  expect(stderr).toBe("");
  expect(code_).toBe(0);
  expect(stdout).toBe("hello\n");
});
