// @sloth/state against raw better-sqlite3 running the same prepared
// statements on the same schema, in the same run: get, set, cas and
// lock+release at FULL and NORMAL durability, then contended lock
// throughput with 4 processes. Prints a table; writes results/state.json.
import { fork } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Durability, openState } from "@sloth/state";
import Database from "better-sqlite3";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 0.5);
const REPS = 3;
const CONTENDED_SECONDS = 3;
const here = path.dirname(fileURLToPath(import.meta.url));

type Op = () => unknown;

/** Runs `op` repeatedly for SECONDS; ops per second. Awaits only real promises. */
async function rate(op: Op): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const r = op();
    if (r instanceof Promise) await r;
  }
  let n = 0;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 20; i++) {
      const r = op();
      if (r instanceof Promise) await r;
    }
    n += 20;
  }
  return n / ((performance.now() - start) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** The hand-written equivalent: same schema and SQL, synchronous calls. */
function rawOps(file: string, durability: Durability): Record<string, Op> & { close(): void } {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.pragma(`synchronous = ${durability === "full" ? "FULL" : "NORMAL"}`);
  db.exec(`CREATE TABLE IF NOT EXISTS e (namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
      created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, expires_at INTEGER, PRIMARY KEY (namespace, key));
    CREATE TABLE IF NOT EXISTS l (namespace TEXT NOT NULL, name TEXT NOT NULL, owner TEXT NOT NULL, token INTEGER NOT NULL,
      acquired_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (namespace, name));
    CREATE TABLE IF NOT EXISTS f (namespace TEXT NOT NULL, name TEXT NOT NULL, token INTEGER NOT NULL, PRIMARY KEY (namespace, name));`);
  const get = db.prepare<[string, string, number], { value: string }>(
    "SELECT value FROM e WHERE namespace = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)",
  );
  const upsert = db.prepare(`INSERT INTO e VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, key)
    DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at`);
  const lockRow = db.prepare(
    "SELECT owner, token, expires_at FROM l WHERE namespace = ? AND name = ?",
  );
  const next = db.prepare<[string, string], { token: number }>(
    "INSERT INTO f VALUES (?, ?, 1) ON CONFLICT (namespace, name) DO UPDATE SET token = token + 1 RETURNING token",
  );
  const put = db.prepare("INSERT OR REPLACE INTO l VALUES (?, ?, ?, ?, ?, ?)");
  const drop = db.prepare(
    "DELETE FROM l WHERE namespace = ? AND name = ? AND owner = ? AND token = ?",
  );
  const value = JSON.stringify({ n: 1, tag: "bench" });
  upsert.run("default", "k", value, Date.now(), Date.now(), null);
  let counter = 0;
  let version = 0;
  const cas = db.transaction(() => {
    const row = get.get("default", "c", Date.now());
    const cur = row ? (JSON.parse(row.value) as number) : undefined;
    if (cur !== (version === 0 ? undefined : version)) throw new Error("raw cas mismatch");
    const now = Date.now();
    upsert.run("default", "c", JSON.stringify(++version), now, now, null);
  });
  const lock = db.transaction(() => {
    const now = Date.now();
    lockRow.get("default", "L");
    const token = next.get("default", "L")?.token ?? 0;
    put.run("default", "L", "me", token, now, now + 30_000);
    return token;
  });
  return {
    get: () => JSON.parse(get.get("default", "k", Date.now())?.value ?? "null"),
    set: () => {
      const now = Date.now();
      upsert.run("default", "s", JSON.stringify({ n: counter++, tag: "bench" }), now, now, null);
    },
    cas: () => cas.immediate(),
    "lock+release": () => drop.run("default", "L", "me", lock.immediate()),
    close: () => db.close(),
  };
}

async function stateOps(file: string, durability: Durability) {
  const s = await openState({ path: file, durability });
  await s.set("k", { n: 1, tag: "bench" });
  let counter = 0;
  let version = 0;
  const ops: Record<string, Op> = {
    get: () => s.get("k"),
    set: () => s.set("s", { n: counter++, tag: "bench" }),
    cas: async () => {
      const r = await s.cas("c", version === 0 ? undefined : version, version + 1);
      if (!r.ok) throw new Error("cas mismatch");
      version++;
    },
    "lock+release": async () => (await s.lock("L", { owner: "me" })).release(),
  };
  return { ops, close: () => s.close() };
}

/** Child mode: hammer one lock for CONTENDED_SECONDS, report count and waits. */
async function contendedChild(file: string, durability: Durability): Promise<void> {
  const s = await openState({ path: file, durability, busyTimeoutMs: 60_000 });
  const waits: number[] = [];
  const end = performance.now() + CONTENDED_SECONDS * 1000;
  while (performance.now() < end) {
    const t = performance.now();
    const lease = await s.lock("hot", { waitMs: 60_000, ttl: 10_000 });
    waits.push(performance.now() - t);
    await lease.release();
  }
  await s.close();
  waits.sort((a, b) => a - b);
  process.send?.({
    n: waits.length,
    p99: waits[Math.floor(waits.length * 0.99)] ?? 0,
    max: waits.at(-1) ?? 0,
  });
  process.disconnect?.();
}

async function contended(dir: string, durability: Durability) {
  const file = path.join(dir, `contended-${durability}.db`);
  await (await openState({ path: file })).close();
  const children = Array.from({ length: 4 }, () =>
    fork(fileURLToPath(import.meta.url), ["--child", file, durability], {
      execArgv: ["--import", "tsx", "--conditions=source"],
    }),
  );
  const results = await Promise.all(
    children.map(
      (c) =>
        new Promise<{ n: number; p99: number; max: number }>((resolve, reject) => {
          c.once("message", (m) => resolve(m as { n: number; p99: number; max: number }));
          c.once("exit", (code) => code !== 0 && reject(new Error(`child exited ${code}`)));
        }),
    ),
  );
  const counts = results.map((r) => r.n);
  const total = counts.reduce((a, b) => a + b, 0);
  return {
    durability,
    opsPerSec: Math.round(total / CONTENDED_SECONDS),
    sharePerProcess: counts.map((n) => Number((n / total).toFixed(3))),
    p99WaitMs: Number(Math.max(...results.map((r) => r.p99)).toFixed(2)),
    maxWaitMs: Number(Math.max(...results.map((r) => r.max)).toFixed(2)),
  };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-bench-state-"));
  const rows: { op: string; durability: Durability; raw: number; state: number; ratio: number }[] =
    [];
  try {
    for (const durability of ["full", "normal"] as const) {
      const raw = rawOps(path.join(dir, `raw-${durability}.db`), durability);
      const st = await stateOps(path.join(dir, `state-${durability}.db`), durability);
      for (const op of ["get", "set", "cas", "lock+release"]) {
        const r: number[] = [];
        const s: number[] = [];
        // Interleaved repetitions, so machine noise hits both sides alike.
        for (let i = 0; i < REPS; i++) {
          r.push(await rate(raw[op] as Op));
          s.push(await rate(st.ops[op] as Op));
        }
        const [rawRate, stateRate] = [median(r), median(s)];
        rows.push({
          op,
          durability,
          raw: Math.round(rawRate),
          state: Math.round(stateRate),
          ratio: Number((stateRate / rawRate).toFixed(2)),
        });
      }
      raw.close();
      await st.close();
    }
    const contention = [await contended(dir, "full"), await contended(dir, "normal")];
    console.log("| op | durability | raw better-sqlite3 ops/s | @sloth/state ops/s | ratio |");
    console.log("|---|---|---:|---:|---:|");
    for (const r of rows)
      console.log(`| ${r.op} | ${r.durability} | ${r.raw} | ${r.state} | ${r.ratio} |`);
    console.log(
      "\n| contended lock+release, 4 processes | ops/s total | share per process | p99 wait ms | max wait ms |",
    );
    console.log("|---|---:|---|---:|---:|");
    for (const c of contention) {
      console.log(
        `| ${c.durability} | ${c.opsPerSec} | ${c.sharePerProcess.join(" / ")} | ${c.p99WaitMs} | ${c.maxWaitMs} |`,
      );
    }
    const out = {
      node: process.version,
      cpus: os.cpus().length,
      secondsPerSample: SECONDS,
      reps: REPS,
      rows,
      contention,
    };
    fs.mkdirSync(path.join(here, "results"), { recursive: true });
    fs.writeFileSync(path.join(here, "results", "state.json"), `${JSON.stringify(out, null, 2)}\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--child") {
  await contendedChild(process.argv[3] ?? "", (process.argv[4] ?? "full") as Durability);
} else {
  await main();
}
