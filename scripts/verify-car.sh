#!/usr/bin/env bash
# Dev aid: check CAR files with the interop harness (tests/interop: @ipld/car, @ipld/dag-pb,
# ipfs-unixfs, ipfs-unixfs-exporter), the ecosystem's JavaScript libraries, not our code.
#
#   scripts/verify-car.sh FILE.car...                   re-hash every block, decode dag-pb/UnixFS
#   scripts/verify-car.sh --export ROOT CAR_DIR ORIG    export the UnixFS tree under ROOT from the
#                                                       CARs in CAR_DIR and compare it with ORIG
#   scripts/verify-car.sh --sample [WORK_DIR]           make a sample tree (split file, HAMT folder,
#                                                       …), prepare it with scripts/sample_dataset_cars.py
#                                                       and run both checks on the result
#
# Needs Node.js >= 20; the harness is installed on first use with `make interop`
# (npm ci --prefix tests/interop), the same step `make test` runs.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
harness="$repo/tests/interop"
python="${PYTHON:-$repo/.venv/bin/python}"

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# Rebuild the tree under $1 from the CARs in $2 and compare it with $3, file by file.
# Directories without any file below them are not compared: Singularity leaves them out.
out=""
trap '[[ -z "$out" ]] || rm -rf "$out"' EXIT
export_and_compare() {
  local root="$1" cars="$2" orig="$3"
  out="$(mktemp -d)"
  node "$harness/export.mjs" --root "$root" "$out/tree" "$cars"/*.car
  if ! diff <(cd "$orig" && find . -type f | LC_ALL=C sort) \
            <(cd "$out/tree" && find . -type f | LC_ALL=C sort) >&2; then
    echo "the exported files differ from $orig (< only in $orig, > only in the export)" >&2
    return 1
  fi
  (cd "$orig" && find . -type f -print0) | while IFS= read -r -d '' f; do
    cmp -s "$orig/$f" "$out/tree/$f" || { echo "content differs: $f" >&2; exit 1; }
  done
  echo "export of $root matches $orig" >&2
}

[[ $# -ge 1 ]] || usage
[[ "$1" == -h || "$1" == --help ]] && usage
command -v node >/dev/null || { echo "node (Node.js >= 20) is required" >&2; exit 2; }
[[ -f "$harness/node_modules/.installed" ]] || make -C "$repo" --no-print-directory interop >&2
case "$1" in
  --export)
    [[ $# -eq 4 ]] || usage
    export_and_compare "$2" "$3" "$4"
    ;;
  --sample)
    work="${2:-$(mktemp -d)}"
    mkdir -p "$work/source" "$work/cars"
    root="$("$python" "$repo/scripts/sample_dataset_cars.py" "$work/source" "$work/cars" --make-sample)"
    echo "sample in $work, root $root" >&2
    node "$harness/verify-car.mjs" "$work"/cars/*.car
    export_and_compare "$root" "$work/cars" "$work/source"
    ;;
  *) exec node "$harness/verify-car.mjs" "$@" ;;
esac
