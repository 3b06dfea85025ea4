#!/usr/bin/env bash
# The GPU smoke check (docs/scaling.md, "GPU smoke check"): on one CUDA GPU with torch,
# transformers, accelerate and peft preinstalled and no network, install the project's other
# dependencies from the local wheels in .whl/, then run the smoke study on CUDA and the SFT
# and rollout benchmarks, printing tokens/s and peak CUDA memory; all in under 10 minutes.
#
#   scripts/gpu_smoke.sh [--cpu] [--quick] [--no-wheels] [--out DIR] [--python PY]
#
#   --cpu        dry run on the CPU (CUDA devices hidden); no GPU needed
#   --quick      tiny budgets: seconds per part (what tests/scripts/test_gpu_smoke.py runs)
#   --no-wheels  do not install .whl/ (use what the interpreter already has)
#   --out DIR    where summary.json, logs/ and the study go (default: $OUT, else runs/gpu_smoke)
#   --python PY  the interpreter (default: $PYTHON, else python3)
#
# Exit status: 0 every part passed; 1 a part failed or timed out; 2 no GPU (without --cpu),
# no wheels, or a bad option.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
SITE=${SFTVSRL_SITE:-/tmp/sftvsrl-site}
CPU=0
QUICK=0
WHEELS=1
OUT_DIR=${OUT:-$ROOT/runs/gpu_smoke}

while [[ $# -gt 0 ]]; do
    case $1 in
        --cpu) CPU=1 ;;
        --quick) QUICK=1 ;;
        --no-wheels) WHEELS=0 ;;
        --out) OUT_DIR=${2:?--out needs a folder}; shift ;;
        --python) PY=${2:?--python needs an interpreter}; shift ;;
        -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "gpu_smoke.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

START=$(date +%s)
mkdir -p "$OUT_DIR"
echo "=== sftvsrl GPU smoke check: $(date -u +%Y-%m-%dT%H:%M:%SZ), repo $ROOT, out $OUT_DIR"

if ! command -v "$PY" > /dev/null; then
    echo "gpu_smoke.sh: no Python interpreter '$PY' (set --python or \$PYTHON)" >&2
    exit 2
fi

# 1. The GPU: nvidia-smi sees one and torch can use it (skipped in the --cpu dry run).
if [[ $CPU -eq 0 ]]; then
    if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L; then
        echo "gpu_smoke.sh: no NVIDIA GPU found (nvidia-smi missing or failing)." >&2
        echo "  This check needs one CUDA GPU; run 'scripts/gpu_smoke.sh --cpu' for a CPU dry run." >&2
        exit 2
    fi
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        echo "gpu_smoke.sh: nvidia-smi sees a GPU but torch.cuda.is_available() is False" >&2
        echo "  (a CPU-only torch build, or a driver too old for its CUDA). Try --cpu for a dry run." >&2
        exit 2
    fi
fi

# 2. The project's other dependencies, offline, from .whl/ into $SITE (no editable install:
#    the repository itself goes on PYTHONPATH).
WHEEL_STATUS=skipped
if [[ $WHEELS -eq 1 ]]; then
    if ! compgen -G "$ROOT/.whl/*.whl" > /dev/null; then
        echo "gpu_smoke.sh: no wheels in $ROOT/.whl/ (fill it as docs/scaling.md says, or pass --no-wheels)." >&2
        echo "  Expected: the wheels of requirements-cpu.txt less torch, transformers, tokenizers," >&2
        echo "  accelerate, peft, pytest, ruff, trl and gguf, with their dependencies:" >&2
        grep -v -E '^(#|$|torch|transformers|tokenizers|accelerate|peft|pytest|ruff|trl|gguf)' \
            "$ROOT/requirements-cpu.txt" | sed 's/^/    /' >&2
        exit 2
    fi
    rm -rf "$SITE"
    if timeout 90 "$PY" "$ROOT/scripts/gpu_smoke.py" wheels --dir "$ROOT/.whl" --target "$SITE"; then
        WHEEL_STATUS="installed into $SITE"
    else
        echo "gpu_smoke.sh: installing the wheels of $ROOT/.whl/ failed" >&2
        exit 1
    fi
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1

# 3. The parts (env, study, sft_bench, rollout_bench), each with its own time limit; what is
#    left of 9.5 minutes after the install is their budget.
BUDGET=$((570 - ($(date +%s) - START)))
ARGS=(--out "$OUT_DIR" --budget "$BUDGET" --wheels "$WHEEL_STATUS")
[[ $CPU -eq 1 ]] && ARGS+=(--cpu)
[[ $QUICK -eq 1 ]] && ARGS+=(--quick)
timeout $((BUDGET + 20)) "$PY" "$ROOT/scripts/gpu_smoke.py" "${ARGS[@]}"
RC=$?
echo "=== gpu_smoke.sh: exit $RC after $(($(date +%s) - START)) s"
exit $RC
