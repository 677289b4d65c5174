#!/usr/bin/env bash
# `make dev`: install what is missing, start the backing services, migrate,
# create the development superuser, then run the whole stack under honcho.
# Ctrl-C stops every process it started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

export DJANGO_DEBUG="${DJANGO_DEBUG:-true}"
export EXPORTER_URLS="${EXPORTER_URLS:-http://127.0.0.1:7801,http://127.0.0.1:7802}"
# Two render processes per export server: while one waits for its PNG, the
# next request is already queued in the server, so Chromium never idles.
export RENDER_CONCURRENCY="${RENDER_CONCURRENCY:-4}"

ensure_prerequisites
ensure_database "${POSTGRES_DB:-function_dashboard}"
say "Migrating and creating the development superuser"
deploy/run bootstrap

cat <<MSG

  Function Dashboard is starting:
    admin   http://127.0.0.1:${ADMIN_PORT:-8000}/admin/   (user: ${DJANGO_SUPERUSER_USERNAME:-admin}, password: ${DJANGO_SUPERUSER_PASSWORD:-admin})
    Flower  http://127.0.0.1:${FLOWER_PORT:-5555}/
  Ctrl-C stops everything.

MSG
exec honcho --procfile deploy/Procfile --app-root "$ROOT" start
