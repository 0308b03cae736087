#!/usr/bin/env node
// Packs every publishable package as it would be published, lints each
// tarball with publint, installs all tarballs together into a throwaway
// project outside the workspace (sharing the pnpm store, offline, so nothing
// downloads and better-sqlite3 is not rebuilt), imports every entry, runs the
// installed `sloth-runner --version` and `sloth-agentd --version`, and type-
// checks a consumer file importing each library with moduleResolution
// nodenext. Exits non-zero on the first failure. Run after `pnpm build`.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const keep = process.argv.includes("--keep");

function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    ...opts,
  });
}
function step(msg) {
  console.log(`pack-check: ${msg}`);
}
function fail(msg) {
  console.error(`pack-check: FAILED: ${msg}`);
  process.exitCode = 1;
}

const packages = ["packages", "apps"]
  .flatMap((d) => fs.readdirSync(path.join(root, d)).map((n) => path.join(root, d, n)))
  .filter((dir) => fs.existsSync(path.join(dir, "package.json")))
  .map((dir) => ({ dir, pkg: JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) }))
  .filter(({ pkg }) => !pkg.private)
  .sort((a, b) => a.pkg.name.localeCompare(b.pkg.name));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-pack-check-"));
try {
  // 1. Pack: workspace:^ ranges become real versions, `files` applies.
  const tarballs = path.join(tmp, "tarballs");
  fs.mkdirSync(tarballs);
  for (const p of packages) {
    if (!fs.existsSync(path.join(p.dir, "dist")))
      throw new Error(`${p.pkg.name} is not built: run pnpm build`);
    const out = sh("pnpm", ["pack", "--pack-destination", tarballs], { cwd: p.dir });
    p.tarball = out
      .trim()
      .split("\n")
      .filter((l) => l.endsWith(".tgz"))
      .at(-1)
      ?.trim();
    if (!p.tarball || !fs.existsSync(p.tarball))
      throw new Error(`pnpm pack of ${p.pkg.name} gave no tarball:\n${out}`);
    const listing = sh("tar", ["tzf", p.tarball]).split("\n");
    // Stray files are warnings, not failures: they bloat the tarball but
    // break nothing. npm always packs files named readme*, whatever `files`
    // says, so such a test must be renamed (readme-example.test.ts).
    const stray = listing.filter((f) => /\.test\.(ts|js)$|\.tsbuildinfo$/.test(f));
    if (stray.length) step(`WARNING: ${p.pkg.name} ships build or test files: ${stray.join(", ")}`);
    step(`packed ${p.pkg.name}@${p.pkg.version} (${listing.length - 1} files)`);
  }

  // 2. publint on each tarball: what would be published.
  const publint = path.join(root, "node_modules/.bin/publint");
  for (const p of packages) {
    try {
      const out = sh(publint, ["run", p.tarball, "--level", "warning"], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      step(`publint ${p.pkg.name}: ${out.trim().split("\n").at(-1)}`);
      if (/warning|suggestion/i.test(out) && !/All good/i.test(out)) console.log(out);
    } catch (e) {
      fail(`publint ${p.pkg.name}:\n${e.stdout ?? ""}${e.stderr ?? ""}`);
    }
  }

  // 3. A consumer project outside the workspace installing all tarballs.
  const project = path.join(tmp, "project");
  fs.mkdirSync(project);
  const files = Object.fromEntries(packages.map((p) => [p.pkg.name, `file:${p.tarball}`]));
  const typesNode = JSON.parse(
    fs.readFileSync(path.join(root, "node_modules/@types/node/package.json"), "utf8"),
  ).version;
  fs.writeFileSync(
    path.join(project, "package.json"),
    `${JSON.stringify(
      {
        name: "sloth-pack-check",
        private: true,
        type: "module",
        dependencies: { ...files, "@types/node": typesNode },
        pnpm: { overrides: files },
      },
      null,
      2,
    )}\n`,
  );
  // Its own workspace root, so pnpm never climbs into another one.
  fs.writeFileSync(
    path.join(project, "pnpm-workspace.yaml"),
    "packages: []\nallowBuilds:\n  better-sqlite3: true\n  esbuild: false\n",
  );
  const store = sh("pnpm", ["store", "path"], { cwd: root }).trim();
  const install = (mode) =>
    sh("pnpm", ["install", mode, "--store-dir", store, "--config.confirmModulesPurge=false"], {
      cwd: project,
      env: { ...process.env, CI: "true", npm_config_nodedir: "/usr" },
      stdio: ["ignore", "pipe", "pipe"],
    });
  const t0 = Date.now();
  let out;
  try {
    out = install("--offline");
  } catch (e) {
    step(`offline install failed, trying --prefer-offline:\n${e.stderr ?? ""}`);
    out = install("--prefer-offline");
  }
  step(`installed the tarballs in ${((Date.now() - t0) / 1000).toFixed(1)} s into ${project}`);
  if (/better-sqlite3.*(install|build)[^\n]*Running/i.test(out))
    step("note: better-sqlite3 was rebuilt");

  // 4. Every entry imports from the installed tarballs.
  for (const p of packages) {
    try {
      const keys = sh(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          `const m = await import(${JSON.stringify(p.pkg.name)}); const k = Object.keys(m); if (!k.length) throw new Error("no exports"); console.log(k.length);`,
        ],
        { cwd: project },
      ).trim();
      const where = fs.realpathSync(path.join(project, "node_modules", p.pkg.name));
      if (where.startsWith(root)) throw new Error(`resolved into the workspace: ${where}`);
      step(`import ${p.pkg.name}: ${keys} exports`);
    } catch (e) {
      fail(`import ${p.pkg.name}: ${e.stderr ?? e.message}`);
    }
    // CommonJS consumers load the same ES module with require() (Node 20.19+).
    try {
      const keys = sh(
        process.execPath,
        [
          "--no-warnings",
          "-e",
          `const m = require(${JSON.stringify(p.pkg.name)}); const k = Object.keys(m); if (!k.length) throw new Error("no exports"); console.log(k.length);`,
        ],
        { cwd: project },
      ).trim();
      step(`require ${p.pkg.name}: ${keys} exports`);
    } catch (e) {
      fail(`require ${p.pkg.name}: ${e.stderr ?? e.message}`);
    }
  }

  // 5. The installed bins print their versions.
  for (const [bin, name] of [
    ["sloth-runner", "@sloth/cli"],
    ["sloth-agentd", "@sloth/agentd"],
  ]) {
    const want = packages.find((p) => p.pkg.name === name)?.pkg.version;
    try {
      const v = sh(path.join(project, "node_modules/.bin", bin), ["--version"], {
        cwd: project,
      }).trim();
      if (!v.includes(want)) throw new Error(`printed '${v}', expected ${want}`);
      step(`${bin} --version: ${v}`);
    } catch (e) {
      fail(`${bin} --version: ${e.stderr ?? e.message}`);
    }
  }

  // 5b. The installed CLI keeps named masters: the full command line adds one,
  // and `master list` (answered by its light path) shows it.
  try {
    const bin = path.join(project, "node_modules/.bin", "sloth-runner");
    const dataDir = path.join(project, "data");
    sh(bin, ["master", "add", "prod", "10.0.0.1:50053", "--data-dir", dataDir], { cwd: project });
    const listed = JSON.parse(
      sh(bin, ["master", "list", "--json", "--data-dir", dataDir], { cwd: project }),
    );
    if (listed.length !== 1 || listed[0].name !== "prod" || listed[0].default !== true)
      throw new Error(`listed ${JSON.stringify(listed)}`);
    step("sloth-runner master add / master list --json: ok");
  } catch (e) {
    fail(`sloth-runner master add/list: ${e.stderr ?? e.message}`);
  }

  // 6. Types resolve for a TypeScript consumer (nodenext, strict, lib check on).
  const libs = packages.filter((p) => !p.pkg.bin);
  fs.writeFileSync(
    path.join(project, "check.ts"),
    `${libs.map((p, i) => `import * as m${i} from "${p.pkg.name}";`).join("\n")}\n` +
      `export const all: object[] = [${libs.map((_, i) => `m${i}`).join(", ")}];\n` +
      `import { connect, masterClient } from "@sloth/client";\n` +
      `export const health = () => masterClient(connect({ address: "127.0.0.1:50053" })).health({});\n`,
  );
  fs.writeFileSync(
    path.join(project, "tsconfig.json"),
    `${JSON.stringify(
      {
        compilerOptions: {
          target: "es2022",
          module: "nodenext",
          moduleResolution: "nodenext",
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ["node"],
        },
        files: ["check.ts"],
      },
      null,
      2,
    )}\n`,
  );
  try {
    sh(path.join(root, "node_modules/.bin/tsc"), ["--noEmit", "-p", project], { cwd: project });
    step(`types of ${libs.map((p) => p.pkg.name).join(", ")} resolve (nodenext)`);
  } catch (e) {
    fail(`type check of the consumer:\n${e.stdout ?? ""}${e.stderr ?? e.message}`);
  }
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
} finally {
  if (keep) step(`kept ${tmp}`);
  else fs.rmSync(tmp, { recursive: true, force: true });
}
if (process.exitCode) console.error("pack-check: failed");
else step(`all ${packages.length} packages pack, install, import and type-check`);
