#!/usr/bin/env bash
# Build the int8 kernels (labkit.kernels._int8) with AddressSanitizer + UndefinedBehaviorSanitizer
# into a temporary folder -- the normal build is left untouched -- and run tests/kernels on it.
# Usage: bash scripts/sanitize.sh .venv/bin/python  (what `make sanitize` runs)
set -euo pipefail

PY=${1:-.venv/bin/python}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=$(cd "$ROOT" && command -v "$PY" || echo "$PY")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/labkit-sanitize.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"

SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g"
echo "== building the sanitized extension in $WORK"
CFLAGS="$SAN" CXXFLAGS="$SAN" LDFLAGS="-fsanitize=address,undefined" \
  "$PY" setup.py -q build_ext --build-temp "$WORK/temp" --build-lib "$WORK/lib" >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; exit 1; }
SO=$(find "$WORK/lib/labkit/kernels" -name '_int8*.so' 2>/dev/null | head -n 1)
if [ -z "$SO" ]; then
  cat "$WORK/build.log"
  echo "sanitize: the extension was not built (setup.py only warns on build failures)" >&2
  exit 1
fi

# A complete copy of the package next to the sanitized module, so that `import labkit` finds this
# copy first on PYTHONPATH (the editable install's finder comes after PYTHONPATH).
(cd "$ROOT" && find labkit -name '*.py' -exec cp --parents {} "$WORK/lib/" \;)

LIBASAN=$(gcc -print-file-name=libasan.so)
[ -f "$LIBASAN" ] || { echo "sanitize: libasan not found ($LIBASAN)" >&2; exit 1; }

echo "== running tests/kernels with $SO"
export LD_PRELOAD="$LIBASAN"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:detect_odr_violation=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONPATH="$WORK/lib${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import labkit.kernels._int8 as m, sys; assert m.__file__.startswith('$WORK'), m.__file__; print('sanitized module:', m.__file__)"
"$PY" -m pytest tests/kernels -q -p no:cacheprovider "${@:2}"
echo "== sanitize: clean"
