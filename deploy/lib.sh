# Shared steps of the local runner (deploy/dev.sh) and the test runner (deploy/test.sh).
# Each step checks first and only acts when something is missing.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_VERSION="0.13.8"
CHROMIUM_BIN="${PUPPETEER_EXECUTABLE_PATH:-/usr/lib/chromium/chromium}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\033[31mERROR: %s\033[0m\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() { # host port seconds name
  local i
  for ((i = 0; i < $3 * 4; i++)); do port_open "$1" "$2" && return 0; sleep 0.25; done
  die "$4 did not start listening on $1:$2 within $3 s"
}

is_root() { [ "$(id -u)" = 0 ]; }

ensure_python() {
  if ! command -v uv >/dev/null 2>&1; then
    say "Installing uv $UV_VERSION (Python package manager)"
    python3 -m pip install --quiet "uv==$UV_VERSION" || die "could not install uv: python3 -m pip install uv==$UV_VERSION"
  fi
  say "Python environment (.venv) from uv.lock"
  (cd "$ROOT" && uv sync --frozen --quiet)
  export PATH="$ROOT/.venv/bin:$PATH"
  export VIRTUAL_ENV="$ROOT/.venv"
}

ensure_chromium() {
  [ -x "$CHROMIUM_BIN" ] && return 0
  if is_root && command -v apt-get >/dev/null 2>&1; then
    say "Installing Debian's Chromium (apt-get install chromium)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } \
      || die "apt-get install chromium failed"
  else
    die "Chromium is missing at $CHROMIUM_BIN: run 'sudo apt-get install -y chromium' (or set PUPPETEER_EXECUTABLE_PATH)"
  fi
}

ensure_exporter() {
  say "Export server npm packages (exporter/)"
  "$ROOT/exporter/install.sh"
}

# Prometheus and promtool: Debian's package, unpacked into var/prometheus (no service is
# installed or started, nothing outside the repository changes); `make test` checks and
# unit-tests the alert rules with promtool and scrapes a running stack with Prometheus.
PROMETHEUS_DIR="$ROOT/var/prometheus"
PROMETHEUS_BIN="$PROMETHEUS_DIR/usr/bin/prometheus"
PROMTOOL_BIN="$PROMETHEUS_DIR/usr/bin/promtool"

ensure_prometheus() {
  [ -x "$PROMETHEUS_BIN" ] && [ -x "$PROMTOOL_BIN" ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "Prometheus: apt-get is needed to fetch Debian's prometheus package"
  say "Prometheus and promtool (Debian's prometheus package, unpacked into var/prometheus)"
  local tmp
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/fd-prometheus.XXXXXX")"
  chmod 777 "$tmp"  # apt-get download writes as the _apt user where it can
  (cd "$tmp" && { apt-get download -q prometheus >/dev/null 2>&1 \
    || { is_root && apt-get update -q >/dev/null && apt-get download -q prometheus >/dev/null 2>&1; }; }) \
    || die "apt-get download prometheus failed (is Debian's package index reachable?)"
  mkdir -p "$PROMETHEUS_DIR"
  dpkg-deb -x "$tmp"/prometheus_*.deb "$PROMETHEUS_DIR"
  rm -rf "$tmp"
  "$PROMETHEUS_BIN" --version 2>&1 | head -1
}

write_dev_prometheus_config() { # exporter-count file: make dev's scrape targets (deploy/Procfile's METRICS_PORTs)
  local i exporters=""
  for ((i = 1; i <= $1; i++)); do exporters="$exporters${exporters:+, }'127.0.0.1:$((9190 + i))'"; done
  mkdir -p "$(dirname "$2")"
  cat >"$2" <<YAML
# Written by deploy/dev.sh (make dev OPS=1); the compose stack's is deploy/prometheus/compose.yml.
global: {scrape_interval: 5s, evaluation_interval: 5s}
rule_files: ['$ROOT/deploy/prometheus/alerts.yml']
scrape_configs:
  - {job_name: admin, static_configs: [{targets: ['127.0.0.1:9181']}]}
  - {job_name: datagen, static_configs: [{targets: ['127.0.0.1:9182']}]}
  - {job_name: worker-points, static_configs: [{targets: ['127.0.0.1:9183']}]}
  - {job_name: worker-render, static_configs: [{targets: ['127.0.0.1:9184']}]}
  - {job_name: worker-persist, static_configs: [{targets: ['127.0.0.1:9185']}]}
  - {job_name: exporter, static_configs: [{targets: [$exporters]}]}
  - job_name: rabbitmq
    metrics_path: /metrics/detailed
    params: {family: [queue_coarse_metrics]}
    static_configs: [{targets: ['127.0.0.1:15692']}]
YAML
}

ensure_admin_assets() { # the charting library of the admin's detail page, from the exporter's npm lock
  local src="$ROOT/exporter/node_modules/highcharts" dst="$ROOT/admin/vendor/highcharts" file
  mkdir -p "$dst"
  for file in highstock.js LICENSE.txt; do
    [ -f "$src/$file" ] || die "exporter/node_modules/highcharts/$file is missing: run exporter/install.sh"
    cmp -s "$src/$file" "$dst/$file" || cp "$src/$file" "$dst/$file"
  done
}

start_postgres() {
  command -v pg_ctlcluster >/dev/null 2>&1 || return 1
  local versions=(/etc/postgresql/*)
  pg_ctlcluster --skip-systemctl-redirect "$(basename "${versions[-1]}")" main start
}

start_redis() {
  command -v redis-server >/dev/null 2>&1 || return 1
  redis-server --daemonize yes --bind 127.0.0.1 --port "${1}" --save "" --appendonly no >/dev/null
}

start_rabbitmq() {
  command -v rabbitmq-server >/dev/null 2>&1 || return 1
  rabbitmq-server -detached >/dev/null 2>&1
}

ensure_service() { # name host port starter apt-package seconds
  local name=$1 host=$2 port=$3 starter=$4 package=$5 seconds=$6
  port_open "$host" "$port" && return 0
  if [ "$host" = 127.0.0.1 ] || [ "$host" = localhost ]; then
    say "$name is not running on $host:$port: starting it"
    if "$starter" "$port"; then
      wait_port "$host" "$port" "$seconds" "$name"
      return 0
    fi
    die "$name is not installed. Install it with: sudo apt-get install -y $package (or point the settings at a running one)"
  fi
  die "$name is not reachable at $host:$port"
}

ensure_services() {
  ensure_service PostgreSQL "${POSTGRES_HOST:-127.0.0.1}" "${POSTGRES_PORT:-5432}" start_postgres postgresql 30
  ensure_service Redis 127.0.0.1 6379 start_redis redis-server 10
  ensure_service RabbitMQ 127.0.0.1 5672 start_rabbitmq rabbitmq-server 90
}

ensure_database() { # name: create it if missing, connecting as the admin's settings say (POSTGRES_*)
  (cd "$ROOT/admin" && DJANGO_SETTINGS_MODULE=dashboard.settings python - "$1" <<'PY'
import sys

import psycopg2
from django.conf import settings
from psycopg2 import sql

name, db = sys.argv[1], settings.DATABASES["default"]
conn = psycopg2.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"], dbname="postgres")
conn.autocommit = True
with conn.cursor() as cur:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
    if cur.fetchone() is None:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"==> created database {name}")
PY
  )
}

ensure_test_vhost() { # the RabbitMQ virtual host of TEST_SLOT's suite (or benchmark)
  local slot="${TEST_SLOT:-0}" vhost
  vhost="function_dashboard_test${slot#0}"
  if command -v rabbitmqctl >/dev/null 2>&1; then
    rabbitmqctl -q add_vhost "$vhost" >/dev/null 2>&1 || true
    rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null
  else
    export CELERY_BROKER_URL="${CELERY_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672//}"
    say "rabbitmqctl not found: using the broker's default virtual host"
  fi
}

ensure_flower_auth() { # FLOWER_BASIC_AUTH for the local Flower: the environment's, or var/flower-auth (generated once, owner-only)
  if [ -z "${FLOWER_BASIC_AUTH:-}" ]; then
    if [ ! -s "$ROOT/var/flower-auth" ]; then
      mkdir -p "$ROOT/var"
      (umask 077 && printf 'flower:%s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$ROOT/var/flower-auth")
    fi
    FLOWER_BASIC_AUTH="$(cat "$ROOT/var/flower-auth")"
  fi
  export FLOWER_BASIC_AUTH
}

ensure_prerequisites() { # what every runner needs before it starts a process
  ensure_python
  ensure_chromium
  ensure_exporter
  ensure_admin_assets
  ensure_services
}
