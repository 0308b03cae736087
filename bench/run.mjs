// Runs every bench/*.bench.ts (or only those whose names contain one of the
// arguments) one after another, from source through tsx, so figures never
// depend on a stale build and benchmarks do not compete for the CPU.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const files = fs
  .readdirSync(here)
  .filter((f) => f.endsWith(".bench.ts") || f.endsWith(".bench.mjs"))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
fs.mkdirSync(path.join(here, "results"), { recursive: true });
let failed = 0;
for (const file of files) {
  console.log(`\n# ${file}`);
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", "--conditions=source", path.join(here, file)],
    {
      cwd: here,
      stdio: "inherit",
    },
  );
  if (r.status !== 0) {
    failed++;
    console.error(`${file} failed (${r.status ?? r.signal})`);
  }
}
process.exitCode = failed > 0 ? 1 : 0;
