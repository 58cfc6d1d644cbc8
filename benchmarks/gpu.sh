#!/usr/bin/env bash
# The one-shot GPU check (docs/gpu.md), from the repository root of a checkout:
#
#   make gpu-bundle                                  # here, on CPU: gpu-bundle/ (wheels + data)
#   benchmarks/gpu.sh --out OUT                      # there, on the GPU machine (no network)
#   benchmarks/gpu.sh --device cpu --toy --bundle B --out OUT   # the CPU dry run (the tests)
#
# Puts the bundle's wheels (the packages the GPU machine lacks) into a temporary folder on
# PYTHONPATH, without pip or network (a wheel is a zip file), then runs benchmarks/gpu_check.py:
# OUT/gpu.json (figures), OUT/gpu.log (every command's output). Other arguments
# (--budget SECONDS) go to gpu_check.py. PYTHON picks the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=gpu-bundle
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) BUNDLE="$2"; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
PY="${PYTHON:-python3}"
if [ ! -f "$BUNDLE/bundle.json" ]; then
  echo "$BUNDLE/bundle.json: no GPU bundle there (make gpu-bundle writes one)" >&2
  exit 2
fi
SITE="$(mktemp -d)"
trap 'rm -rf "$SITE"' EXIT
if compgen -G "$BUNDLE/wheels/*.whl" > /dev/null; then
  "$PY" - "$SITE" "$BUNDLE"/wheels/*.whl <<'PYCODE'
import sys, zipfile
site, wheels = sys.argv[1], sys.argv[2:]
for wheel in wheels:
    zipfile.ZipFile(wheel).extractall(site)
print(f"{len(wheels)} wheels -> {site}")
PYCODE
fi
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" benchmarks/gpu_check.py --bundle "$BUNDLE" "${ARGS[@]}"
