#!/usr/bin/env bash
# `make dev`: install what is missing, start the backing services, migrate,
# create the development superuser, then run the whole stack under honcho.
# Ctrl-C stops every process it started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

export DJANGO_DEBUG="${DJANGO_DEBUG:-true}"

# How many export servers, and how many render processes: deploy/sizing's rule
# from the machine's cores and memory (README, Scaling); EXPORTER_INSTANCES and
# RENDER_CONCURRENCY in the environment win.
sizing="$(deploy/sizing)"
eval "$sizing"
export EXPORTER_INSTANCES RENDER_CONCURRENCY
urls=""
for ((i = 1; i <= EXPORTER_INSTANCES; i++)); do urls="$urls${urls:+,}http://127.0.0.1:$((7800 + i))"; done
export EXPORTER_URLS="${EXPORTER_URLS:-$urls}"

# Every process's log lines (JSON) are also appended to var/log/<service>.log (deploy/run):
# README, "Operating it", "Logs" shows how to pull one run's lines from them.
export LOG_DIR="${LOG_DIR:-$ROOT/var/log}"

ensure_prerequisites
ensure_flower_auth
ensure_database "${POSTGRES_DB:-function_dashboard}"
say "Migrating and creating the development superuser"
deploy/run bootstrap

# deploy/Procfile with one exporter line per instance (each with its own metrics port).
procfile="$(mktemp "${TMPDIR:-/tmp}/function-dashboard-Procfile.XXXXXX")"
trap 'rm -f "$procfile"' EXIT
grep -v '^exporter[0-9]*:' deploy/Procfile >"$procfile"
for ((i = 1; i <= EXPORTER_INSTANCES; i++)); do
  echo "exporter$i: EXPORTER_PORT=$((7800 + i)) METRICS_PORT=$((9190 + i)) deploy/run exporter" >>"$procfile"
done

# OPS=1: Prometheus too (Debian's package, unpacked into var/prometheus), scraping every
# process's METRICS_PORT (deploy/Procfile) and RabbitMQ's own plugin, with the alert rules.
ops=""
if [[ "${OPS:-0}" == 1 ]]; then
  ensure_prometheus
  write_dev_prometheus_config "$EXPORTER_INSTANCES" "$ROOT/var/prometheus/dev.yml"
  echo "prometheus: $PROMETHEUS_BIN --config.file=$ROOT/var/prometheus/dev.yml --storage.tsdb.path=$ROOT/var/prometheus/data --web.listen-address=127.0.0.1:${PROMETHEUS_PORT:-9090} --log.level=warn" >>"$procfile"
  ops="    Prometheus http://127.0.0.1:${PROMETHEUS_PORT:-9090}/   (targets: /targets, alerts: /alerts)"
  port_open 127.0.0.1 15692 || ops="$ops
    RabbitMQ's queue depths need its plugin: rabbitmq-plugins enable rabbitmq_prometheus"
fi

# The banner names the development account's password (admin/admin, debug only); a password
# you set yourself (DJANGO_SUPERUSER_PASSWORD) is never printed.
if [[ -n "${DJANGO_SUPERUSER_PASSWORD:-}" ]]; then
  login="user: ${DJANGO_SUPERUSER_USERNAME:-admin}, password: the DJANGO_SUPERUSER_PASSWORD you set"
else
  login="user: ${DJANGO_SUPERUSER_USERNAME:-admin}, password: admin"
fi

cat <<MSG

  Function Dashboard is starting:
    admin   http://127.0.0.1:${ADMIN_PORT:-8000}/admin/   ($login)
    Flower  http://127.0.0.1:${FLOWER_PORT:-5555}/   (user:password in var/flower-auth, or your FLOWER_BASIC_AUTH; not printed)
    ${EXPORTER_INSTANCES} export servers (:7801...), ${RENDER_CONCURRENCY} render processes (${SIZING_CORES} cores, ${SIZING_AVAILABLE_MB} MB available)
${ops}
  Ctrl-C stops everything.

MSG
honcho --procfile "$procfile" --app-root "$ROOT" start
