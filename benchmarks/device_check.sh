#!/usr/bin/env bash
# One prepared check of jaxunsup on an accelerator (≤ 8 minutes on one H100), run from anywhere:
#   bash benchmarks/device_check.sh
# It writes everything under $OUT (default ./device_out, relative to the repository root):
#   device.txt      nvidia-smi, jax.devices() and torch's view of the device
#   parity.md       `python -m parity`: the parity table, torch on JAX's device (parity/README.md)
#   bench/          `benchmarks/bench.py all --quick` result rows (<NAME>.jsonl), bench.log
#   runs/NAME-IMPL  one `python -m jaxunsup run NAME --preset quick` per experiment, for
#                   `--conv-impl` auto and matmul where the experiment has convolutions
#   steps.tsv       step, experiment, impl, exit status, wall seconds, log file: one row a step
# Every step runs under its own `timeout`, and the whole check under a budget: a step that
# would start past it is skipped (and listed as such), so one stuck step cannot eat the time.
# Steps run in the order info, parity, bench, runs. Run again with the same OUT to go on: a
# run whose workdir has its results.json is not repeated, and steps.tsv gains the new rows
# (e.g. DEVICE_CHECK_SKIP="info parity bench" gives the remaining runs the whole budget).
# Environment (all optional):
#   OUT                      output folder (default ./device_out)
#   DEVICE_CHECK_BUDGET_S    the whole check's budget in seconds (default 470)
#   DEVICE_CHECK_ONLY        experiments to run, space-separated (default: every one)
#   DEVICE_CHECK_PARITY      parity checks to run, space-separated (default: every one)
#   DEVICE_CHECK_SKIP        steps to leave out, any of: info parity bench runs
#   DEVICE_CHECK_REPEAT      bench.py --repeat (default 1: on a GPU runs vary little)
#   PARITY_S, BENCH_S, RUN_S per-step timeouts (defaults 120, 150, 60 seconds)
# A CPU smoke test of the script itself (one experiment, one parity check, no benches):
#   DEVICE_CHECK_ONLY=ae-conv DEVICE_CHECK_PARITY=vae-ops DEVICE_CHECK_SKIP=bench \
#     OUT=/tmp/device_out bash benchmarks/device_check.sh
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-./device_out}
PY=.venv/bin/python
[ -x "$PY" ] || PY=python
BUDGET_S=${DEVICE_CHECK_BUDGET_S:-470}
SKIP=" ${DEVICE_CHECK_SKIP:-} "
PARITY_S=${PARITY_S:-120}
BENCH_S=${BENCH_S:-150}
RUN_S=${RUN_S:-60}
# JAX and torch share the GPU in parity and bench: no process may preallocate most of it.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

mkdir -p "$OUT/runs" "$OUT/bench" "$OUT/logs"
TSV="$OUT/steps.tsv"
[ -e "$TSV" ] || printf 'step\texperiment\timpl\texit\tseconds\tlog\n' >"$TSV"
START=$SECONDS

# step NAME EXPERIMENT IMPL LIMIT_S LOG CMD...: runs CMD under `timeout` (the smaller of LIMIT_S
# and what is left of the budget), its output tee'd to LOG, and appends a row to steps.tsv.
# A failing or timed-out step is recorded (exit 124: timed out), never fatal.
step() {
  local name=$1 exp=$2 impl=$3 limit=$4 log=$5
  shift 5
  local left=$((BUDGET_S - (SECONDS - START)))
  if ((left < 10)); then
    printf '%s\t%s\t%s\tskipped (budget)\t0\t%s\n' "$name" "$exp" "$impl" "$log" >>"$TSV"
    echo "== $name $exp $impl: skipped, the ${BUDGET_S} s budget is spent"
    return 0
  fi
  ((limit > left)) && limit=$left
  echo "== $name $exp $impl (timeout ${limit} s)"
  local t0=$SECONDS rc=0
  set +e
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$exp" "$impl" "$rc" "$((SECONDS - t0))" "$log" >>"$TSV"
}

skipped() { [[ $SKIP == *" $1 "* ]]; }

info() {
  echo "date: $(date -u +%FT%TZ)"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not found"; fi
  "$PY" - <<'EOF'
import jax
import torch

print("jax", jax.__version__, "backend", jax.default_backend(), "devices", jax.devices())
for d in jax.devices():
    print(" ", d.platform, d.device_kind, getattr(d, "memory_stats", lambda: None)())
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
}

if ! skipped info; then
  export -f info
  export PY
  step info - - 30 "$OUT/device.txt" bash -c info  # `timeout` runs commands, not functions
fi

if ! skipped parity; then
  # shellcheck disable=SC2086  # the check names are words
  step parity - - "$PARITY_S" "$OUT/parity.md" "$PY" -m parity ${DEVICE_CHECK_PARITY:-}
fi

if ! skipped bench; then
  step bench all - "$BENCH_S" "$OUT/bench/bench.log" "$PY" benchmarks/bench.py all --quick \
    --repeat "${DEVICE_CHECK_REPEAT:-1}" --out "$OUT/bench"
fi

if ! skipped runs; then
  # "NAME conv" or "NAME plain" per experiment: conv ones have a conv_impl Config field.
  kinds=$("$PY" - <<'EOF'
import dataclasses

from jaxunsup.registry import EXPERIMENTS

for name, exp in EXPERIMENTS.items():
    fields = {f.name for f in dataclasses.fields(exp.config)}
    print(name, "conv" if "conv_impl" in fields else "plain")
EOF
  )
  while read -r name kind; do
    if [ -n "${DEVICE_CHECK_ONLY:-}" ] && [[ " $DEVICE_CHECK_ONLY " != *" $name "* ]]; then
      continue
    fi
    if [ "$kind" = conv ]; then
      for impl in auto matmul; do
        if [ -e "$OUT/runs/$name-$impl/results.json" ]; then
          echo "== run $name $impl: done in an earlier call"
          continue
        fi
        step run "$name" "$impl" "$RUN_S" "$OUT/logs/$name-$impl.log" \
          "$PY" -m jaxunsup run "$name" --workdir "$OUT/runs/$name-$impl" --preset quick \
          --conv-impl "$impl" --no-cache
      done
    elif [ -e "$OUT/runs/$name/results.json" ]; then
      echo "== run $name: done in an earlier call"
    else
      step run "$name" - "$RUN_S" "$OUT/logs/$name.log" \
        "$PY" -m jaxunsup run "$name" --workdir "$OUT/runs/$name" --preset quick --no-cache
    fi
  done <<<"$kinds"
fi

echo "== done in $((SECONDS - START)) s; steps:"
column -t -s $'\t' "$TSV" 2>/dev/null || cat "$TSV"
