#!/usr/bin/env bash
# Build the int8 kernels (labkit.kernels._int8) with AddressSanitizer + UndefinedBehaviorSanitizer
# into a temporary folder -- the normal build is left untouched -- and run tests/kernels on it.
# Usage: bash scripts/sanitize.sh .venv/bin/python  (what `make sanitize` runs)
set -euo pipefail

PY=${1:-.venv/bin/python}
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac  # absolute, links kept
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
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

# libasan must be loaded first; libstdc++ too, or ASan's __cxa_throw interceptor finds no real
# __cxa_throw (python itself does not link libstdc++) and aborts on the first C++ exception.
LIBASAN=$(gcc -print-file-name=libasan.so)
LIBSTDCXX=$(gcc -print-file-name=libstdc++.so)
[ -f "$LIBASAN" ] || { echo "sanitize: libasan not found ($LIBASAN)" >&2; exit 1; }

echo "== running tests/kernels with $SO"
export LD_PRELOAD="$LIBASAN $LIBSTDCXX"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:detect_odr_violation=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONPATH="$WORK/lib${PYTHONPATH:+:$PYTHONPATH}"
cd "$WORK"  # not the repository root, whose labkit/ would come first on sys.path
"$PY" -c "import labkit.kernels._int8 as m, sys; assert m.__file__.startswith('$WORK'), m.__file__; print('sanitized module:', m.__file__)"
"$PY" -m pytest "$ROOT/tests/kernels" -q -p no:cacheprovider "${@:2}"
echo "== sanitize: clean"
