import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, it } from "vitest";

// The README's example, run as written (with its files in a temp dir).
it("README example seals, reads, masks and lists a secret", async () => {
  const readme = fs.readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-secrets-readme-"));
  const logs: unknown[] = [];
  const body = code
    .replace(/^import .*$/gm, "")
    .replaceAll("/tmp/sloth-secrets-example", dir)
    .replace(/console\.log/g, "log");
  const { openSecretsStore, redactor } = await import("./index.js");
  try {
    new Function("openSecretsStore", "redactor", "log", body)(
      openSecretsStore,
      redactor,
      (x: unknown) => logs.push(x),
    );
    expect(fs.statSync(path.join(dir, "secrets.key")).mode & 0o777).toBe(0o600);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  expect(logs).toEqual(["connecting with ***", ["production/db_password v1"]]);
});
