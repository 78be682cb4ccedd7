#!/usr/bin/env bash
# Run a pytest selection N times in a row while every core is kept busy by a
# competing process, as on a shared build machine or a laptop doing other work.
#
#   bash tests/under_load.sh [--runs N] [--report FILE] [--] [PYTEST ARGS...]
#
#   bash tests/under_load.sh --runs 3                     # the whole suite, 3 times
#   bash tests/under_load.sh --runs 3 -- -m "not host"    # what a laptop without root runs
#   bash tests/under_load.sh --runs 3 -- tests/matting/test_cli.py -k ctrl_c
#
# The load is one single-threaded numpy matrix-product loop per core (CPU and
# memory bandwidth), at the same priority as the tests: run the script under
# `nice` and both are niced alike. The tests go through tests/run (the README's
# command). Each run's result and wall time go to the report (default
# under-load-report.txt in the current folder); the load is always stopped at
# the end, also on Ctrl-C or an error. Exit status: 0 when every run passed.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3
report="$PWD/under-load-report.txt"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --runs=*) runs="${1#--runs=}"; shift ;;
    --report) report="$2"; shift 2 ;;
    --report=*) report="${1#--report=}"; shift ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "under_load.sh: --runs takes a positive whole number" >&2; exit 2; }
[ -x .venv/bin/python ] || { echo "under_load.sh: no .venv; run the README's set-up command first" >&2; exit 2; }

load_pids=()
stop_load() {
  for pid in "${load_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${load_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  load_pids=()
}
test_pid=""
stop_all() {  # Ctrl-C or kill: the running pytest gets SIGINT (its fixtures tear down), then the load goes
  if [ -n "$test_pid" ]; then
    kill -INT "$test_pid" 2>/dev/null || true
    # SIGTERM if it is still there after 30 s (SIGINT is ignored when this script was started so)
    for ((t = 0; t < 300; t++)); do kill -0 "$test_pid" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$test_pid" 2>/dev/null || true
    wait "$test_pid" 2>/dev/null || true
  fi
  stop_load
}
trap stop_load EXIT
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

cores=$(nproc)
for ((c = 0; c < cores; c++)); do
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python -c '
import numpy as np
a = np.random.default_rng(0).random((256, 256))
while True:
    a = np.tanh(a @ a.T / 256.0)
' &
  load_pids+=($!)
done

cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
{
  echo "# under_load.sh $(date -u +%Y-%m-%dT%H:%M:%SZ): $runs run(s) of: pytest ${*:-(whole suite)}"
  echo "# load: $cores numpy loop(s) on $cores core(s) ($cpu), same priority as the tests"
  printf "%-4s %-6s %9s  %s\n" run result wall_s "pytest summary"
} | tee "$report"

failed=0
for ((r = 1; r <= runs; r++)); do
  log="${report%.txt}-run$r.log"
  t0=$(date +%s%N)
  # In the background, so a signal reaches the traps at once; with job control on (set -m),
  # else a non-interactive shell starts it with SIGINT ignored and stop_all could not stop it.
  set -m
  bash tests/run "$@" >"$log" 2>&1 &
  test_pid=$!
  set +m
  if wait "$test_pid"; then result=pass; else result=FAIL; failed=$((failed + 1)); fi
  test_pid=""
  wall_ds=$((($(date +%s%N) - t0) / 100000000))  # tenths of a second
  alive=0
  for pid in "${load_pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
  [ "$alive" = "$cores" ] || result="$result (load: only $alive of $cores loops alive)"
  summary=$(grep -E "(passed|failed|error|no tests ran).* in [0-9.]+s" "$log" | tail -1 | sed 's/^=* //; s/ =*$//')
  printf "%-4s %-6s %7d.%d  %s\n" "$r" "$result" $((wall_ds / 10)) $((wall_ds % 10)) "${summary:-see $log}" \
    | tee -a "$report"
done
echo "# $((runs - failed)) of $runs run(s) passed; logs beside the report (${report%.txt}-runN.log)" | tee -a "$report"
[ "$failed" = 0 ]
