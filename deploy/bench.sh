#!/usr/bin/env bash
# `make bench`: the benchmark scripts. They start what they need on their own
# ports and print figures measured side by side in one run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ensure_prerequisites
export TEST_SLOT="${TEST_SLOT:-9}"
ensure_test_vhost

say "broker: persistent messages with and without publisher confirms"
python -m tests.bench_confirms

say "export cost (issue 24): CPU per chart against the stock export path, pixels, load run, memory"
python -m tests.bench_export_cost

say "pipeline: bulk refresh vs the export servers alone, add-to-chart by stage"
python -m tests.bench_pipeline "$@"

say "metrics: the whole stack's CPU per chart with the metrics off and on (scraped as make dev's Prometheus does)"
python -m tests.bench_pipeline --metrics-cost 200

say "schedule: the dispatcher's tick at 10,000 scheduled rows (CELERY_BEAT_PYTHON: also django-celery-beat's)"
python -m tests.bench_schedules --sustained

say "datagen: one SQL statement, raw and M4 (needs an export server for the pixel comparison)"
EXPORTER_PORT=17999 deploy/run exporter >/dev/null 2>&1 &
exporter=$!
trap 'kill $exporter 2>/dev/null || true' EXIT
wait_port 127.0.0.1 17999 60 "export server"
# datagen's SQL timed on its own, as the cluster's admin role: datagen's least-privilege
# role is created by the admin's bootstrap, which this benchmark does not run.
EXPORTER_URL=http://127.0.0.1:17999 DATAGEN_POSTGRES_USER="${POSTGRES_USER:-postgres}" \
  DATAGEN_POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-}" python -m tests.bench_datagen
