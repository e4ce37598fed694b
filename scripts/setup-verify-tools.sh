#!/usr/bin/env bash
# Install the independent Node.js verification tools (CAR reader, UnixFS exporter) once and print
# the folder, for the end-to-end test (tests/e2e/test_prepare_tree.py):
#
#   export DATASET_WORKER_VERIFY_TOOLS="$(scripts/setup-verify-tools.sh)"
#
# Source: $DATASET_WORKER_VERIFY_SRC, default ../shared/tools/verify (read-only in CI). It is
# copied to a cache folder keyed by its package-lock.json ($DATASET_WORKER_CACHE_DIR, default
# ${XDG_CACHE_HOME:-~/.cache}/dataset-worker) and installed there with `npm ci`. Needs node and npm.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
src="${DATASET_WORKER_VERIFY_SRC:-$repo/../shared/tools/verify}"
cache="${DATASET_WORKER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dataset-worker}"

[[ -f "$src/package-lock.json" ]] || { echo "verify tools not found in $src" >&2; exit 2; }
command -v npm >/dev/null || { echo "npm is required to install the verify tools" >&2; exit 2; }
key="$(sha256sum "$src/package-lock.json" "$src"/*.mjs | sha256sum | cut -c1-16)"
dir="$cache/verify-$key"
if [[ ! -f "$dir/.installed" ]]; then
  echo "installing the verify tools into $dir (npm ci)" >&2
  rm -rf "$dir" && mkdir -p "$dir"
  cp -R "$src/." "$dir/"
  rm -rf "$dir/node_modules"
  (cd "$dir" && npm ci --silent --no-audit --no-fund >&2)
  touch "$dir/.installed"
fi
echo "$dir"
