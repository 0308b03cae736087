import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { spawnTs } from "./harness.js";

const WRITER = path.join(path.dirname(fileURLToPath(import.meta.url)), "crash-writer.ts");

/** What a crash run found. */
export interface CrashReport {
  integrity: string;
  acknowledged: number;
  missing: string[];
}

/**
 * Starts a writer, lets it write for a random moment, kills it with
 * SIGKILL, and repeats; then checks the file's integrity and that every
 * write the writer acknowledged is there. This shows crash safety (a
 * process dying mid-transaction), not power-loss durability.
 */
export async function runCrashLoop(file: string, rounds: number): Promise<CrashReport> {
  const acked: string[] = [];
  for (let round = 0; round < rounds; round++) {
    const child = spawnTs(WRITER, [file, `r${round}`], false);
    let buffer = "";
    let firstAck: () => void = () => {};
    const started = new Promise<void>((resolve) => {
      firstAck = resolve;
    });
    const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout?.on("data", (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      acked.push(...lines);
      if (lines.length > 0) firstAck();
    });
    await Promise.race([started, exited]);
    await sleep(Math.random() * 300);
    child.kill("SIGKILL");
    await exited;
    if (child.exitCode !== null)
      throw new Error(`writer exited by itself (${child.exitCode}): ${stderr}`);
  }
  const db = new Database(file, { readonly: true });
  try {
    const integrity = db.pragma("integrity_check", { simple: true }) as string;
    const has = db.prepare<[string], { value: string }>(
      "SELECT value FROM state_entries WHERE key = ?",
    );
    const missing = acked.filter((key) => {
      const row = has.get(key);
      return !row || (JSON.parse(row.value) as { i: number }).i !== Number(key.split("/")[1]);
    });
    return { integrity, acknowledged: acked.length, missing };
  } finally {
    db.close();
  }
}
