// CLI cold start: `sloth-runner --version`, `sloth-runner master list` (three
// masters registered) and `sloth-agentd --version`, each a fresh process,
// next to `node -e 0` in the same run, runs interleaved. Goal: at most 2×.
import { spawnSync } from "node:child_process";
import { AGENTD_BIN, CLI_BIN, teardown, tempDir } from "./lib/cluster.js";
import { median, ms, printTable, QUICK, type Row, row, writeResult } from "./lib/report.js";

const RUNS = QUICK ? 5 : 11;

function wall(args: string[], env: NodeJS.ProcessEnv): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  const d = performance.now() - t;
  if (r.status !== 0) throw new Error(`node ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
  return d;
}

function main(): void {
  const dataDir = tempDir("sloth-bench-cli-");
  const env = { ...process.env, NO_COLOR: "1", SLOTH_RUNNER_DATA_DIR: dataDir };
  const cases: Record<string, string[]> = {
    "node -e 0": ["-e", "0"],
    "sloth-runner --version": [CLI_BIN, "--version"],
    "sloth-runner master list": [CLI_BIN, "master", "list"],
    "sloth-agentd --version": [AGENTD_BIN, "--version"],
  };
  for (const [name, address] of [
    ["production", "10.0.0.1:50053"],
    ["staging", "10.0.0.2:50053"],
    ["lab", "127.0.0.1:50053"],
  ])
    wall([CLI_BIN, "master", "add", name!, address!], env);
  const times: Record<string, number[]> = {};
  for (const k of Object.keys(cases)) {
    wall(cases[k]!, env); // warm the file cache
    times[k] = [];
  }
  for (let i = 0; i < RUNS; i++) {
    for (const [k, args] of Object.entries(cases)) times[k]!.push(wall(args, env));
  }
  const base = median(times["node -e 0"]!);
  const rows: Row[] = Object.keys(cases).map((k) =>
    k === "node -e 0"
      ? row({ measure: k, value: ms(base) })
      : row({
          measure: k,
          value: ms(median(times[k]!)),
          reference: `node -e 0 ${ms(base)}`,
          ratio: median(times[k]!) / base,
          goal: { kind: "max", limit: 2, text: "≤ 2×" },
        }),
  );
  printTable(`CLI cold start, medians of ${RUNS} (${QUICK ? "quick" : "full"})`, rows);
  writeResult("cli-start", rows, { runs: RUNS, ms: times });
  teardown();
}

main();
