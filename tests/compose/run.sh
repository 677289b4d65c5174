#!/usr/bin/env bash
# `make compose-test`: prove the compose path on a real Docker engine (see tests/compose/run.py).
#
# 1. An engine: uses the running one; else installs Debian's docker.io,
#    docker-compose (v1.29; v2 is used instead when `docker compose` works) and
#    debootstrap with apt-get, and starts dockerd with the fastest storage driver
#    that works here (overlay2, else fuse-overlayfs, else vfs), without the
#    default bridge; with iptables rules for its own networks when iptables works
#    (they isolate the compose networks from each other). The engine it starts
#    keeps running afterwards, so its image cache serves the next run;
#    COMPOSE_TEST_STOP_ENGINE=1 stops it at the end.
# 2. Base images: each pinned base tag that is not present is pulled (with a short
#    timeout); only one that cannot be pulled gets a local stand-in
#    (tests/compose/standins/build.sh, kept between runs). One line per image says
#    which (pulled / already present / stand-in built), here and in run.py's summary.
# 3. tests/compose/run.py: build, up, health, the user story, scale, kill, down -v.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../../deploy/lib.sh
source "$ROOT/deploy/lib.sh"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/fd-dockerd.log}"
started_engine=""

engine_up() { docker info >/dev/null 2>&1; }

install_engine() {
  local need=()
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  [ "${#need[@]}" = 0 ] && return 0
  is_root || die "missing ${need[*]}: run 'sudo apt-get install -y ${need[*]}'"
  say "Installing ${need[*]} (Debian packages: Docker engine 20.10, Compose v1.29, debootstrap)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; } \
    || die "apt-get install ${need[*]} failed"
}

start_engine() {
  local driver pid i
  for driver in ${COMPOSE_TEST_STORAGE_DRIVERS:-overlay2 fuse-overlayfs vfs}; do
    if [ "$driver" = fuse-overlayfs ] && ! command -v fuse-overlayfs >/dev/null 2>&1; then
      if ! is_root || ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q fuse-overlayfs >/dev/null 2>&1; then
        continue
      fi
    fi
    # With iptables the engine isolates its networks from each other (the export
    # servers' network); it adds rules for its own bridges only. No default bridge.
    local iptables=true
    iptables -L -n >/dev/null 2>&1 || iptables=false
    say "Starting dockerd (storage driver $driver, no default bridge, iptables=$iptables); log: $DOCKERD_LOG"
    setsid dockerd --storage-driver="$driver" --iptables="$iptables" --bridge=none >>"$DOCKERD_LOG" 2>&1 &
    pid=$!
    for ((i = 0; i < 60; i++)); do
      if engine_up; then started_engine="$pid"; return 0; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    say "dockerd with $driver did not start; trying the next driver"
  done
  die "dockerd did not start with any storage driver (see $DOCKERD_LOG)"
}

stop_engine() {
  if [ -n "$started_engine" ] && [ "${COMPOSE_TEST_STOP_ENGINE:-0}" = 1 ]; then
    say "Stopping the dockerd this run started (pid $started_engine)"
    kill "$started_engine" 2>/dev/null || true
    wait "$started_engine" 2>/dev/null || true
  fi
}
base_images="$(mktemp "${TMPDIR:-/tmp}/fd-base-images.XXXXXX")"
cleanup() { rm -f "$base_images"; stop_engine; }
trap cleanup EXIT

if ! engine_up; then
  install_engine
  start_engine
else
  install_engine
fi
say "Docker engine $(docker version -f '{{.Server.Version}}'), storage driver $(docker info -f '{{.Driver}}')"
# Whether the engine isolates networks from each other (not with --iptables=false):
# tests/compose/run.py proves the export servers' isolation by address only then.
if pgrep -a dockerd | grep -q -- '--iptables=false'; then
  export COMPOSE_TEST_NETWORK_ISOLATION=0
  say "dockerd runs with --iptables=false: networks are separated by name only, not by address"
else
  export COMPOSE_TEST_NETWORK_ISOLATION=1
fi

STANDIN_REPORT="$base_images" "$ROOT/tests/compose/standins/build.sh"
export COMPOSE_TEST_BASE_IMAGES="$base_images"
ensure_python >/dev/null
cd "$ROOT"
"$ROOT/.venv/bin/python" "$ROOT/tests/compose/run.py"
