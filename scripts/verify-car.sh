#!/usr/bin/env bash
# Dev aid (not used by the tests): check CAR files with independent JavaScript tools
# (@ipld/car, @ipld/dag-pb, ipfs-unixfs, ipfs-unixfs-exporter), written by nobody on this project.
#
#   scripts/verify-car.sh FILE.car...                   re-hash every block, decode dag-pb/UnixFS
#   scripts/verify-car.sh --export ROOT CAR_DIR ORIG    export the UnixFS tree under ROOT from the
#                                                       CARs in CAR_DIR and compare it with ORIG
#   scripts/verify-car.sh --sample [WORK_DIR]           make a sample tree (split file, HAMT folder,
#                                                       …), prepare it with scripts/sample_dataset_cars.py
#                                                       and run both checks on the result
#
# Tools: $DATASET_WORKER_VERIFY_TOOLS if set (a folder with car-verify.mjs and node_modules, e.g.
# /work/verify); otherwise scripts/setup-verify-tools.sh installs ../shared/tools/verify (or
# $DATASET_WORKER_VERIFY_SRC) once with `npm ci` into a cache folder keyed by its lock file.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"

tools_dir() {
  # One installer for the verify tools: the same one CI uses.
  if [[ -n "${DATASET_WORKER_VERIFY_TOOLS:-}" ]]; then
    echo "$DATASET_WORKER_VERIFY_TOOLS"
  else
    "$repo/scripts/setup-verify-tools.sh"
  fi
}

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[[ $# -ge 1 ]] || usage
tools="$(tools_dir)"
case "$1" in
  --export)
    [[ $# -eq 4 ]] || usage
    exec node "$tools/export-verify.mjs" --root "$2" --cars "$3" --original "$4"
    ;;
  --sample)
    work="${2:-$(mktemp -d)}"
    mkdir -p "$work/source" "$work/cars"
    root="$("$python" "$repo/scripts/sample_dataset_cars.py" "$work/source" "$work/cars" --make-sample)"
    echo "sample in $work, root $root" >&2
    node "$tools/car-verify.mjs" "$work"/cars/*.car
    exec node "$tools/export-verify.mjs" --root "$root" --cars "$work/cars" --original "$work/source"
    ;;
  -h|--help) usage ;;
  *) exec node "$tools/car-verify.mjs" "$@" ;;
esac
