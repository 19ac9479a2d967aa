#!/usr/bin/env bash
# Runs ON the lent GPU machine (see README.md beside this file): the whole lesson series on KERAS_BACKEND=jax,
# mixed bfloat16, random VGG16 weights (no download there), from the carried wheels and packed data.
#
# Usage (from the checkout's root): bash benchmarks/gpu/run_on_device.sh [--cpu-ok] [runner options ...]
#   runner options go to `python -m workshop_utils run` after --weights none, so they add to or override it:
#   --quick, --only 2 3, --precision float32 (default mixed_bfloat16), --epochs 5 ...
#   --cpu-ok: run even where JAX sees no GPU (for testing this script on a CPU machine).
# Environment: OUT (required: the folder whose files come back), PYTHON (default python3),
#   SERIES_TIMEOUT (seconds for the series, default 520: the device tool stops a call at 600 s),
#   KEEP_WORK=1 (keep the temporary folder: installed wheels, data, run folder with the models).
# Before the series, a random VGG16 is run once under the precision asked for; if its outputs are NaN/inf
# (seen with jax 0.11-0.12 on the CPU under mixed_bfloat16), the series runs in float32, and says so.
# Writes to $OUT: env.txt, series.log, results.md, summary.json, results.json, comparison.png and
# notebooks.tar.gz (the executed notebooks), as far as the run got; prints the results tables last.
set -uo pipefail

fail() { echo "run_on_device: $*" >&2; exit 2; }

CPU_OK=0
if [ "${1:-}" = "--cpu-ok" ]; then CPU_OK=1; shift; fi
PYTHON=${PYTHON:-python3}
CARRY=benchmarks/gpu/carry
[ -f workshop_utils/runner.py ] || fail "run me from the checkout's root (no workshop_utils/runner.py in $PWD)"
[ -n "${OUT:-}" ] || fail "OUT is not set: the device tool sets it; elsewhere give OUT=<an empty folder>"
mkdir -p "$OUT" && [ -w "$OUT" ] || fail "cannot write to OUT=$OUT"
shopt -s nullglob
wheels=("$CARRY"/wheels/*.whl)
zips=("$CARRY"/*.zip)
[ ${#wheels[@]} -gt 0 ] || fail "no wheels in $CARRY/wheels: run 'python benchmarks/gpu/wheels.py' on the \
developer machine, and name benchmarks/gpu/carry in the run call's carry list"
[ ${#zips[@]} -eq 1 ] || fail "need exactly one packed dataset $CARRY/*.zip, found ${#zips[@]}: run \
'python benchmarks/gpu/pack_data.py' on the developer machine, and carry benchmarks/gpu/carry"
command -v "$PYTHON" >/dev/null || fail "no $PYTHON here: give PYTHON=<the python that has jax>"

# The precision asked for (the last --precision given wins, as in argparse), else mixed bfloat16.
PRECISION=mixed_bfloat16
prev=
for arg in "$@"; do
    [ "$prev" = "--precision" ] && PRECISION=$arg
    case $arg in --precision=*) PRECISION=${arg#--precision=} ;; esac
    prev=$arg
done

WORK=$(mktemp -d /tmp/gpu-series.XXXXXX)
[ "${KEEP_WORK:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT  # what matters is copied to $OUT
echo "== installing ${#wheels[@]} carried wheels into $WORK/site (no index)"
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
    --target "$WORK/site" "${wheels[@]}" || fail "installing the carried wheels failed (see pip's message above): \
were they fetched for this Python (wheels.py --python-version $("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])'))?"
# The checkout first: the package's code is the working tree's; the installed wheel adds its metadata.
export PYTHONPATH="$PWD:$WORK/site" PYTHONUNBUFFERED=1 KERAS_BACKEND=jax
# The data folder holds the packed zip: the package unpacks it itself (no download, no other data).
export WORKSHOP_HOME="$WORK/home"
unset WORKSHOP_DATA_DIR WORKSHOP_CACHE_DIR WORKSHOP_DATA_URL
mkdir -p "$WORKSHOP_HOME/data" && cp "${zips[0]}" "$WORKSHOP_HOME/data/"
# One notebook kernel at a time; JAX takes GPU memory as needed and shares compiled programs across lessons.
export XLA_PYTHON_CLIENT_PREALLOCATE=false JAX_COMPILATION_CACHE_DIR="$WORK/jax-cache"

echo "== environment"
{
    "$PYTHON" "benchmarks/gpu/device_check.py" "$CPU_OK" "$PRECISION" "$WORK/precision" || exit 3
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
    echo "git commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} 2>&1 | tee "$OUT/env.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "the environment check failed (above)"
RUN_PRECISION=$(cat "$WORK/precision")

RUN="$WORK/run"
echo "== python -m workshop_utils run --weights none $* --precision $RUN_PRECISION (at most ${SERIES_TIMEOUT:-520} s)"
start=$(date +%s)
timeout -s INT -k 30 "${SERIES_TIMEOUT:-520}" "$PYTHON" -m workshop_utils run --weights none --out "$RUN" "$@" \
    --precision "$RUN_PRECISION" 2>&1 | tee "$OUT/series.log"
code=${PIPESTATUS[0]}
echo "== the series ended with exit code $code after $(( $(date +%s) - start )) s (precision $RUN_PRECISION)" \
    | tee -a "$OUT/series.log"
[ "$code" -eq 124 ] || [ "$code" -eq 130 ] && echo "   (stopped by SERIES_TIMEOUT: what ran so far follows)"

for name in results.md summary.json results.json comparison.png; do
    [ -f "$RUN/$name" ] && cp "$RUN/$name" "$OUT/"
done
notebooks=("$RUN"/*.ipynb)
if [ ${#notebooks[@]} -gt 0 ]; then
    tar -czf "$OUT/notebooks.tar.gz" -C "$RUN" "${notebooks[@]##*/}"
    [ "$(stat -c %s "$OUT/notebooks.tar.gz")" -le $((16 * 1024 * 1024)) ] \
        || { rm "$OUT/notebooks.tar.gz"; echo "the executed notebooks are over 16 MiB together: not sent back"; }
fi

echo
[ "$RUN_PRECISION" = "$PRECISION" ] || echo "NOTE: run in $RUN_PRECISION, not $PRECISION (see env.txt)"
if [ -f "$RUN/results.md" ]; then
    sed '/^## Warnings/,$d' "$RUN/results.md"  # the warnings stay in $OUT/results.md
elif [ -f "$RUN/results.json" ]; then
    echo "## Test metrics recorded before the series stopped"
    "$PYTHON" -c "import sys; from workshop_utils import results; \
print(results.results_table(results.load_results(sys.argv[1])))" "$RUN/results.json"
else
    echo "No lesson recorded a result (see series.log)."
fi
exit "$code"
