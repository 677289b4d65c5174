#!/usr/bin/env bash
# Install KEDA's models and JSON schemas (npm @kubernetes-models/keda, pinned by
# package-lock.json) that tests/test_k8s.py validates the ScaledObjects and the
# TriggerAuthentication of deploy/k8s against (validate-keda.mjs). Idempotent: runs
# `npm ci` only when node_modules is missing or older than the lock; offline once
# installed. No install scripts are run.
#
# Settings (environment):
#   K8S_CHECKS_FORCE_INSTALL=1   run npm ci even if up to date
set -euo pipefail

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

STAMP="node_modules/.k8s-checks-installed"
MODELS="node_modules/@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject.js"

if [[ "${K8S_CHECKS_FORCE_INSTALL:-0}" != "1" && -f "$STAMP" && -f "$MODELS" \
      && ! package-lock.json -nt "$STAMP" && ! package.json -nt "$STAMP" ]]; then
  echo "deploy/k8s/tools/install.sh: node_modules is up to date with package-lock.json"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "deploy/k8s/tools/install.sh: npm not found (apt-get install -y npm, or any Node >= 20 with npm)" >&2
  exit 1
fi

echo "deploy/k8s/tools/install.sh: npm ci (@kubernetes-models/keda)"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
[[ -f "$MODELS" ]] || { echo "deploy/k8s/tools/install.sh: $MODELS is missing after npm ci" >&2; exit 1; }
touch "$STAMP"
echo "deploy/k8s/tools/install.sh: done ($MODELS)"
