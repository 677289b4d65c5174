#!/usr/bin/env bash
# `make dev`: install what is missing, start the backing services, migrate,
# create the development superuser, then run the whole stack under honcho.
# Ctrl-C stops every process it started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

export DJANGO_DEBUG="${DJANGO_DEBUG:-true}"

# How many export servers, and how many render processes, from the machine
# (see README, Scaling). One export server (one Chromium page) is latency-bound:
# it keeps about 0.4 core busy. So: two instances per core, as memory allows
# (about 0.85 GB each, after 1.5 GB for the rest of the stack), at least one;
# two render processes per instance, so that while one waits for its PNG the
# next request already waits inside the server.
cores="$(nproc 2>/dev/null || echo 2)"
available_mb="$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo 2>/dev/null || echo 4096)"
by_memory=$(((available_mb - 1536) / 870))
instances=$((2 * cores))
((instances > by_memory)) && instances=$by_memory
((instances < 1)) && instances=1
export EXPORTER_INSTANCES="${EXPORTER_INSTANCES:-$instances}"
urls=""
for ((i = 1; i <= EXPORTER_INSTANCES; i++)); do urls="$urls${urls:+,}http://127.0.0.1:$((7800 + i))"; done
export EXPORTER_URLS="${EXPORTER_URLS:-$urls}"
export RENDER_CONCURRENCY="${RENDER_CONCURRENCY:-$((2 * EXPORTER_INSTANCES))}"

ensure_prerequisites
ensure_database "${POSTGRES_DB:-function_dashboard}"
say "Migrating and creating the development superuser"
deploy/run bootstrap

# deploy/Procfile with one exporter line per instance.
procfile="$(mktemp "${TMPDIR:-/tmp}/function-dashboard-Procfile.XXXXXX")"
trap 'rm -f "$procfile"' EXIT
grep -v '^exporter[0-9]*:' deploy/Procfile >"$procfile"
for ((i = 1; i <= EXPORTER_INSTANCES; i++)); do
  echo "exporter$i: EXPORTER_PORT=$((7800 + i)) deploy/run exporter" >>"$procfile"
done

cat <<MSG

  Function Dashboard is starting:
    admin   http://127.0.0.1:${ADMIN_PORT:-8000}/admin/   (user: ${DJANGO_SUPERUSER_USERNAME:-admin}, password: ${DJANGO_SUPERUSER_PASSWORD:-admin})
    Flower  http://127.0.0.1:${FLOWER_PORT:-5555}/
    ${EXPORTER_INSTANCES} export servers (:7801...), ${RENDER_CONCURRENCY} render processes (${cores} cores, ${available_mb} MB available)
  Ctrl-C stops everything.

MSG
honcho --procfile "$procfile" --app-root "$ROOT" start
