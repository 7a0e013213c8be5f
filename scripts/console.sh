#!/usr/bin/env bash
# Builds the web console's bundle into internal/console/dist, which kvsd embeds: Node.js and npm
# from Debian when missing (apt-get, sudo when not root), the npm packages pinned in
# console/package-lock.json (npm ci, skipped while the lock file is the one it last installed
# from), then esbuild through console/build.mjs, which prints the bundle's gzipped size.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "console: installing Debian packages: nodejs npm"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if ! cmp -s console/package-lock.json console/node_modules/.kvsd-installed-lock.json 2>/dev/null; then
  echo "console: npm ci in console/"
  (cd console && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  cp console/package-lock.json console/node_modules/.kvsd-installed-lock.json
fi
node console/build.mjs
