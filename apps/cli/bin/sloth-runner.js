#!/usr/bin/env node
import { readFileSync } from "node:fs";

const argv = process.argv.slice(2);
// The reader of our output went away (`| head -1`): stop through SIGTERM,
// so that a run cancels its tasks first, instead of dying on an unhandled
// EPIPE with a stack trace; the exit code is then 141, as for `yes | head`
// killed by SIGPIPE.
let hungUp = false;
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e) => {
    if (e.code !== "EPIPE") throw e;
    if (hungUp) return;
    hungUp = true;
    globalThis[Symbol.for("sloth-runner.output-closed")] = true;
    process.kill(process.pid, "SIGTERM");
  });
}
// `--version` and plain `master list` answer without loading the whole CLI:
// start-up matters in scripts.
if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  process.stdout.write(`${pkg.version}\n`);
} else if (!(argv.includes("master") && (await import("../dist/fast.js")).runFast(argv))) {
  const { main } = await import("../dist/main.js");
  await main(argv);
}
