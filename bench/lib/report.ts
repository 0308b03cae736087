// Statistics, goal verdicts, tables and result files shared by the cluster
// benchmarks. Every goal is a ratio to a limit measured in the same run.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** SLOTH_BENCH_QUICK=1: small counts, for CI. */
export const QUICK = process.env.SLOTH_BENCH_QUICK === "1";

const RESULTS = fileURLToPath(new URL("../results/", import.meta.url));

/** The p-th percentile (0..100) of `xs`, nearest rank. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i] ?? Number.NaN;
}

export const median = (xs: readonly number[]): number => percentile(xs, 50);

/** Rounds to `d` decimals for tables and JSON. */
export const round = (x: number, d = 2): number => Number(x.toFixed(d));

/** A goal on a ratio: "max" means the ratio must stay at or below `limit`. */
export interface Goal {
  kind: "max" | "min";
  limit: number;
  /** How the goal reads, e.g. "≤ 1.5×" or "≥ 80 %". */
  text: string;
}

/** One line of a result table. */
export interface Row {
  measure: string;
  value: string;
  /** What the value is compared with, measured in the same run. */
  reference?: string;
  ratio?: number;
  goal?: Goal;
  /** "met", "MISSED" or "" when there is no goal. */
  verdict?: string;
  note?: string;
}

/** Builds a row, deciding the verdict from the ratio and the goal. */
export function row(r: Omit<Row, "verdict">): Row {
  let verdict = "";
  if (r.goal && r.ratio !== undefined) {
    const ok = r.goal.kind === "max" ? r.ratio <= r.goal.limit : r.ratio >= r.goal.limit;
    verdict = Number.isFinite(r.ratio) && ok ? "met" : "MISSED";
  }
  return { ...r, verdict };
}

function ratioText(r: Row): string {
  if (r.ratio === undefined) return "";
  const shown = r.goal?.text.includes("%") ? `${round(r.ratio * 100, 1)} %` : `${round(r.ratio)}×`;
  if (!r.goal) return shown;
  return `${shown} (goal ${r.goal.text}) ${r.verdict}`;
}

/** Prints rows as a markdown table on stdout. */
export function printTable(title: string, rows: readonly Row[]): void {
  console.log(`\n## ${title}\n`);
  console.log("| measure | value | reference (same run) | ratio |");
  console.log("|---|---:|---:|---|");
  for (const r of rows) {
    console.log(`| ${r.measure} | ${r.value} | ${r.reference ?? ""} | ${ratioText(r)} |`);
  }
  for (const r of rows) if (r.note) console.log(`- ${r.measure}: ${r.note}`);
}

/** Writes results/<name>.json with the machine context, rows and raw data. */
export function writeResult(name: string, rows: readonly Row[], data: object): void {
  const out = {
    name,
    date: new Date().toISOString(),
    quick: QUICK,
    node: process.version,
    cpus: os.cpus().length,
    loadavg: os.loadavg().map((x) => round(x)),
    rows,
    data,
  };
  fs.mkdirSync(RESULTS, { recursive: true });
  fs.writeFileSync(path.join(RESULTS, `${name}.json`), `${JSON.stringify(out, null, 2)}\n`);
  const missed = rows.filter((r) => r.verdict === "MISSED").map((r) => r.measure);
  if (missed.length) console.log(`\ngoals missed: ${missed.join("; ")}`);
}

/** Milliseconds with two decimals, for tables. */
export const ms = (x: number): string => `${round(x)} ms`;
