#!/usr/bin/env node
import { readFileSync } from "node:fs";

const argv = process.argv.slice(2);
// `--version` and plain `master list` answer without loading the whole CLI:
// start-up matters in scripts.
if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  process.stdout.write(`${pkg.version}\n`);
} else if (!(argv.includes("master") && (await import("../dist/fast.js")).runFast(argv))) {
  const { main } = await import("../dist/main.js");
  await main(argv);
}
