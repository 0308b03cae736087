import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { removeStaleTaskFolders } from "./task-runner.js";

let dir: string | undefined;
afterEach(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

it("removes the task folders a killed agent left, and nothing else", async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-scratch-"));
  for (const d of ["bundle-a1", "work-b2/sub", "workspaces/ws-1", "runs/x"])
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.writeFileSync(path.join(dir, "work-b2", "sub", "f"), "x");
  expect(removeStaleTaskFolders(dir)).toBe(2);
  const deadline = Date.now() + 5000;
  while (fs.readdirSync(dir).length > 2 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  expect(fs.readdirSync(dir).sort()).toEqual(["runs", "workspaces"]);
  expect(removeStaleTaskFolders(path.join(dir, "missing"))).toBe(0);
});
