#!/usr/bin/env bash
# The pinned base images of the project's files (FROM python:3.11.14-slim-bookworm,
# image: postgres:17.6-alpine, ...), for an engine that may not reach a container
# registry (this development machine and CI). For each pinned tag, in order:
#
#   already present  an image with that name exists (pulled, or a stand-in built
#                    by an earlier run: said so); it is kept;
#   pulled           `docker pull` got the official image (within
#                    STANDIN_PULL_TIMEOUT seconds, default 20);
#   stand-in built   no registry answered: a local stand-in is built from the
#                    recipe here, tagged with the official name and labelled
#                    dashboard.standin=<that name>.
#
# One line per image says which, on stdout and appended to STANDIN_REPORT (a
# file, if set: tests/compose/run.py prints it in its summary). To replace
# stand-ins by the official images once a registry is reachable, remove them
# (docker rmi <tag>) and run this again.
#
#   tests/compose/standins/build.sh
#
# The stand-ins only honour the part of each official image's contract that
# docker-compose.yml relies on (see each recipe). python and the services'
# stand-ins start FROM debian:12.11-slim, whichever it is.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DOCKER="${DOCKER:-docker}"
CACHE="${STANDIN_CACHE:-/var/tmp/fd-standins}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PULL_TIMEOUT="${STANDIN_PULL_TIMEOUT:-20}"
REPORT="${STANDIN_REPORT:-/dev/null}"

say() { printf '==> %s\n' "$*"; }
have() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
standin_of() { "$DOCKER" image inspect -f '{{index .Config.Labels "dashboard.standin"}}' "$1" 2>/dev/null; }
recipe_of() { "$DOCKER" image inspect -f '{{index .Config.Labels "dashboard.standin.recipe"}}' "$1" 2>/dev/null; }
# A recipe's fingerprint: the Dockerfile and the entrypoint beside it. A stand-in built
# from an older recipe is built again (an official image is never touched).
fingerprint() { cat "$HERE/$1" "$HERE/${1%.Dockerfile}-entrypoint.sh" 2>/dev/null | sha256sum | cut -c 1-16; }
# One line per image: "<tag>: <how>", here and in the report.
report() { printf 'base image %-34s %s\n' "$1:" "$2" | tee -a "$REPORT"; }

# official tag -> recipe, in build order (python and the services start FROM debian).
STANDINS=(
  "debian:12.11-slim debian.Dockerfile"
  "python:3.11.14-slim-bookworm python.Dockerfile"
  "postgres:17.6-alpine postgres.Dockerfile"
  "redis:7.4.5-alpine redis.Dockerfile"
  "rabbitmq:4.1.4-management-alpine rabbitmq.Dockerfile"
  "prom/prometheus:v2.42.0 prometheus.Dockerfile"
)

minbase() { # Debian's minimal root file system as an image: the debian stand-in's base
  have fd-standin/bookworm:minbase && return 0
  command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
  say "debootstrap --variant=minbase bookworm (Debian's minimal root file system, ~200 MB)"
  rm -rf "$CACHE/rootfs" && mkdir -p "$CACHE"
  debootstrap --variant=minbase bookworm "$CACHE/rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  tar -C "$CACHE/rootfs" -c . | "$DOCKER" import -c 'CMD ["bash"]' - fd-standin/bookworm:minbase >/dev/null
  rm -rf "$CACHE/rootfs"
}

context="" # the build context, made on first need: the recipes plus this machine's extra CA certificates
build_context() {
  [ -n "$context" ] && return 0
  context="$(mktemp -d)"
  trap 'rm -rf "$context"' EXIT
  cp "$HERE"/*.Dockerfile "$HERE"/*.sh "$HERE"/debian.sources "$HERE"/docker-clean.apt.conf "$context"/
  mkdir -p "$context/host-ca"
  cp /usr/local/share/ca-certificates/*.crt "$context/host-ca/" 2>/dev/null || true
  touch "$context/host-ca/.keep"
}

mkdir -p "$CACHE"
for entry in "${STANDINS[@]}"; do
  tag="${entry%% *}" recipe="${entry##* }" how="the pull failed"
  if have "$tag" && [ -n "$(standin_of "$tag")" ] && [ "$(recipe_of "$tag")" != "$(fingerprint "$recipe")" ]; then
    # Built again under the same tag (Docker's build cache keeps it quick); the old image
    # stays, untagged, for whatever still uses it. A stand-in stays a stand-in: no pull.
    say "the stand-in $tag was built from another recipe: building it again"
    how="its recipe changed"
  elif have "$tag"; then
    if [ -n "$(standin_of "$tag")" ]; then
      report "$tag" "already present: a STAND-IN (built earlier from tests/compose/standins/$recipe)"
    else
      report "$tag" "already present (not a stand-in)"
    fi
    continue
  else
    say "docker pull $tag (at most $PULL_TIMEOUT s)"
    if timeout "$PULL_TIMEOUT" "$DOCKER" pull -q "$tag" >"$CACHE/pull-$recipe.log" 2>&1; then
      report "$tag" "pulled (the official image)"
      continue
    fi
    say "could not pull $tag: $(tail -n 1 "$CACHE/pull-$recipe.log" | cut -c 1-200)"
  fi
  [ "$recipe" = debian.Dockerfile ] && minbase
  build_context
  say "building the stand-in for $tag ($recipe)"
  "$DOCKER" build --network host -t "$tag" --label "dashboard.standin.recipe=$(fingerprint "$recipe")" \
    -f "$context/$recipe" "$context" >"$CACHE/build-$recipe.log" 2>&1 \
    || { tail -30 "$CACHE/build-$recipe.log" >&2; echo "stand-in $tag: build failed ($CACHE/build-$recipe.log)" >&2; exit 1; }
  report "$tag" "STAND-IN built (tests/compose/standins/$recipe; $how)"
done
say "base images ready"
