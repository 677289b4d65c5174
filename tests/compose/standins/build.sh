#!/usr/bin/env bash
# Local stand-ins for the pinned base images, for an engine that cannot reach a
# container registry (this development machine and CI). Each one is tagged with
# the official name the project's files use (FROM python:3.11.14-slim-bookworm,
# image: postgres:17.6-alpine, ...) and labelled dashboard.standin=<that name>.
# An image that already exists under that name (pulled or built before) is kept.
#
#   tests/compose/standins/build.sh [docker command]
#
# Where a registry is reachable, nothing here is needed: `docker compose` pulls
# the official images. The stand-ins only honour the part of each official
# image's contract that docker-compose.yml relies on (see each recipe).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DOCKER="${DOCKER:-docker}"
CACHE="${STANDIN_CACHE:-/var/tmp/fd-standins}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

say() { printf '==> %s\n' "$*"; }
have() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# official tag -> recipe, in build order (python and the services start FROM debian).
STANDINS=(
  "debian:12.11-slim debian.Dockerfile"
  "python:3.11.14-slim-bookworm python.Dockerfile"
  "postgres:17.6-alpine postgres.Dockerfile"
  "redis:7.4.5-alpine redis.Dockerfile"
  "rabbitmq:4.1.4-management-alpine rabbitmq.Dockerfile"
)

missing=0
for entry in "${STANDINS[@]}"; do have "${entry%% *}" || missing=1; done
if [ "$missing" = 0 ]; then say "stand-in base images: all present"; exit 0; fi

mkdir -p "$CACHE"
if ! have fd-standin/bookworm:minbase; then
  command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
  say "debootstrap --variant=minbase bookworm (Debian's minimal root file system, ~200 MB)"
  rm -rf "$CACHE/rootfs" && mkdir -p "$CACHE"
  debootstrap --variant=minbase bookworm "$CACHE/rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  tar -C "$CACHE/rootfs" -c . | "$DOCKER" import -c 'CMD ["bash"]' - fd-standin/bookworm:minbase >/dev/null
  rm -rf "$CACHE/rootfs"
fi

# The build context: the recipes plus this machine's extra CA certificates.
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$HERE"/*.Dockerfile "$HERE"/*.sh "$HERE"/debian.sources "$HERE"/docker-clean.apt.conf "$context"/
mkdir -p "$context/host-ca"
cp /usr/local/share/ca-certificates/*.crt "$context/host-ca/" 2>/dev/null || true
touch "$context/host-ca/.keep"

for entry in "${STANDINS[@]}"; do
  tag="${entry%% *}" recipe="${entry##* }"
  if have "$tag"; then continue; fi
  say "stand-in $tag ($recipe)"
  "$DOCKER" build --network host -t "$tag" -f "$context/$recipe" "$context" >"$CACHE/build-$recipe.log" 2>&1 \
    || { tail -30 "$CACHE/build-$recipe.log" >&2; echo "stand-in $tag: build failed ($CACHE/build-$recipe.log)" >&2; exit 1; }
done
say "stand-in base images ready"
