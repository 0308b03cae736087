import os from "node:os";
import { expect, test } from "vitest";
import { runShell } from "./shell.js";

const base = () => ({ cwd: os.tmpdir(), env: process.env, signal: new AbortController().signal });

test("output is captured up to the limit, keeping the tail", async () => {
  const chunks: string[] = [];
  const r = await runShell("seq 1 2000; echo err >&2; exit 4", {
    ...base(),
    outputLimit: 20,
    onOutput: (stream, text) => chunks.push(`${stream}:${text.length}`),
  });
  expect(r.exitCode).toBe(4);
  expect(r.stdout).toBe("\n1997\n1998\n1999\n2000\n".slice(-20));
  expect(r.stderr).toBe("err\n");
  expect(r.killed).toBe(false);
  expect(chunks.length).toBeGreaterThan(0);
});

test("a command killed by a signal reports 128 + the signal number", async () => {
  const r = await runShell("kill -TERM $$", base());
  expect(r.exitCode).toBe(143);
});

test("utf-8 split across chunks is decoded whole", async () => {
  const r = await runShell("printf 'h\\xc3'; sleep 0.05; printf '\\xa9llo'", base());
  expect(r.stdout).toBe("héllo");
});
