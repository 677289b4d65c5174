#!/usr/bin/env bash
# `make test`: install what is missing, make sure the backing services run,
# then run every suite on the real services (PostgreSQL, RabbitMQ, Redis,
# the export server with Chromium). The suites start and stop their own
# processes (datagen, export servers, workers) on test ports.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ensure_prerequisites
ensure_prometheus
say "Compose Specification schema (deploy/compose/)"
deploy/compose/install.sh
say "KEDA's schemas (deploy/k8s/tools/)"
deploy/k8s/tools/install.sh

# The system tests use a RabbitMQ virtual host of their own, so a running
# development stack neither steals their tasks nor receives them.
ensure_test_vhost

say "ruff"
ruff check --output-format concise .
ruff format --check --quiet .

# With arguments (deploy/test.sh tests/test_run_state.py -x), only the system suite runs,
# with them; datagen's own suite runs from datagen/ (cd datagen && python -m pytest …).
if [ "$#" -eq 0 ]; then
  say "datagen tests"
  (cd datagen && python -m pytest)
fi

say "system tests (admin, pipeline, datagen, export servers)"
python -m pytest "$@"
