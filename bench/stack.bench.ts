// Deployment stacks (@sloth/stack), next to the figures seed 003 gives for
// the original (lock acquire/release < 50 ms, snapshot < 100 ms, drift
// detection 200-500 ms, validation 100-300 ms) and to limits measured in the
// same run: a bare SQLite write transaction on the same file, the same
// checks run as plain `bash -c` spawns, and `node -e 0` for the CLI.
// Prints a table; writes results/stack.json.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { detectDrift, openStackStore, validateStack } from "@sloth/stack";
import Database from "better-sqlite3";
import { CLI_BIN } from "./lib/cluster.js";
import { median, ms, printTable, QUICK, type Row, row, writeResult } from "./lib/report.js";

const REPS = QUICK ? 20 : 200;
const CLI_REPS = QUICK ? 3 : 9;
const RESOURCES = 20;

function time(f: () => unknown, reps = REPS): number[] {
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    f();
    out.push(performance.now() - t);
  }
  return out;
}

async function timeAsync(f: () => Promise<unknown>, reps: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await f();
    out.push(performance.now() - t);
  }
  return out;
}

/** The resources' checks as plain spawns, RESOURCES at once (drift runs 8 at a time). */
function plainChecks(): Promise<void> {
  let left = RESOURCES;
  let running = 0;
  return new Promise((resolve) => {
    const next = () => {
      while (running < 8 && left > 0) {
        left--;
        running++;
        const c = spawn("bash", ["-c", 'echo \'{"port":80,"replicas":3}\''], {
          stdio: "ignore",
          detached: true,
        });
        c.once("close", () => {
          running--;
          if (left === 0 && running === 0) resolve();
          else next();
        });
      }
    };
    next();
  });
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-bench-stack-"));
  try {
    const file = path.join(dir, "stacks.db");
    const s = openStackStore({ path: file });
    s.create("net");
    s.create("prod", { dependsOn: ["net"] });
    const state: Record<string, unknown> = {};
    for (let i = 0; i < 200; i++) state[`output${i}`] = { image: `app:${i}`, replicas: i % 5 };
    s.setState("prod", state as never);
    for (let i = 0; i < RESOURCES; i++)
      s.setResource("prod", {
        name: `svc${i}`,
        type: "service",
        desired: { port: 80, replicas: 3 },
        check: `echo '{"port":80,"replicas":3}'`,
      });

    const lock = time(() => {
      const l = s.lock("prod", { lockedBy: "bench" });
      s.unlock("prod", { lockId: l.lockId });
    });
    const snapshot = time(() => s.snapshot("prod"));
    const validate = time(() => validateStack(s, "prod"));
    const drift = await timeAsync(() => detectDrift(s, "prod"), QUICK ? 3 : 15);
    const plain = await timeAsync(plainChecks, QUICK ? 3 : 15);
    s.close();

    // The floor of a write: one row in a write transaction at the same durability (FULL).
    const db = new Database(path.join(dir, "raw.db"));
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)");
    const ins = db.prepare("INSERT OR REPLACE INTO t VALUES (1, ?)");
    const del = db.prepare("DELETE FROM t WHERE k = 1");
    const raw = time(() => {
      db.transaction(() => ins.run("x")).immediate();
      db.transaction(() => del.run()).immediate();
    });
    db.close();

    // The CLI, as a user runs it, next to `node -e 0`.
    const data = path.join(dir, "data");
    const cli = (...args: string[]) => {
      const t = performance.now();
      const r = spawnSync(process.execPath, [CLI_BIN, "--data-dir", data, ...args], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      if (r.status !== 0) throw new Error(`${args.join(" ")}: ${r.stderr}`);
      return performance.now() - t;
    };
    cli("stack", "create", "web");
    const cliLock: number[] = [];
    const cliNode: number[] = [];
    for (let i = 0; i < CLI_REPS; i++) {
      cliLock.push(
        cli("stack", "lock", "acquire", "web", "--locked-by", "b") +
          cli("stack", "lock", "release", "web", "--locked-by", "b"),
      );
      const t = performance.now();
      spawnSync(process.execPath, ["-e", "0"]);
      cliNode.push((performance.now() - t) * 2);
    }

    const rows: Row[] = [
      row({
        measure: "lock + release (library)",
        value: ms(median(lock)),
        reference: `bare SQLite: 2 write transactions ${ms(median(raw))}; original: < 50 ms`,
        ratio: median(lock) / median(raw),
        note: "two durable (FULL) transactions, each with an audit event",
      }),
      row({
        measure: `snapshot (${RESOURCES} resources, 200 outputs of state)`,
        value: ms(median(snapshot)),
        reference: "original: < 100 ms",
        ratio: median(snapshot) / 100,
        goal: { kind: "max", limit: 1, text: "≤ 1× the original's 100 ms" },
      }),
      row({
        measure: "validate",
        value: ms(median(validate)),
        reference: "original: 100-300 ms",
        ratio: median(validate) / 100,
        goal: { kind: "max", limit: 1, text: "≤ 1× the original's 100 ms" },
      }),
      row({
        measure: `drift detect (${RESOURCES} resources, a \`bash -c\` check each, 8 at once)`,
        value: ms(median(drift)),
        reference: `the same checks as plain spawns: ${ms(median(plain))}; original: 200-500 ms`,
        ratio: median(drift) / median(plain),
        goal: { kind: "max", limit: 1.5, text: "≤ 1.5× plain spawns" },
      }),
      row({
        measure: "CLI: `stack lock acquire` + `stack lock release`",
        value: ms(median(cliLock)),
        reference: `2 × node -e 0: ${ms(median(cliNode))}; original: < 50 ms`,
        ratio: median(cliLock) / median(cliNode),
        note: "two CLI processes, each starting node, yargs and the SQLite layer (most of it module loading)",
      }),
    ];
    printTable(`Stacks, medians (${QUICK ? "quick" : "full"})`, rows);
    writeResult("stack", rows, { lock, snapshot, validate, drift, plain, raw, cliLock, cliNode });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
