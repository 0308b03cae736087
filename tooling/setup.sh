#!/usr/bin/env bash
# Installs the pinned toolchain and every dependency, then builds the
# workspace. Safe to run again; a fresh machine needs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(pnpm --version 2>/dev/null || true)" != "10.34.9" ]; then
  # The corepack bundled with Node 20 fails its signature check: use npm.
  npm i -g pnpm@10.34.9 >/dev/null
fi
# node-gyp builds better-sqlite3 against the local Node headers.
export npm_config_nodedir=/usr
pnpm install --frozen-lockfile
pnpm build
