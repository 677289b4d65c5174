#!/usr/bin/env bash
# `make test`: install what is missing, make sure the backing services run,
# then run every suite on the real services (PostgreSQL, RabbitMQ, Redis,
# the export server with Chromium). The suites start and stop their own
# processes (datagen, export servers, workers) on test ports.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ensure_python
ensure_chromium
ensure_exporter
ensure_services
say "Compose Specification schema (deploy/compose/)"
deploy/compose/install.sh

# The system tests use a RabbitMQ virtual host of their own, so a running
# development stack neither steals their tasks nor receives them.
slot="${TEST_SLOT:-0}"
TEST_VHOST="function_dashboard_test${slot#0}"
if command -v rabbitmqctl >/dev/null 2>&1; then
  rabbitmqctl -q add_vhost "$TEST_VHOST" >/dev/null 2>&1 || true
  rabbitmqctl -q set_permissions -p "$TEST_VHOST" guest '.*' '.*' '.*' >/dev/null
else
  export CELERY_BROKER_URL="${CELERY_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672//}"
  say "rabbitmqctl not found: the tests use the broker's default virtual host"
fi

say "ruff"
ruff check --output-format concise .
ruff format --check --quiet .

say "datagen tests"
(cd datagen && python -m pytest "$@")

say "system tests (admin, pipeline, datagen, export servers)"
python -m pytest "$@"
