#!/usr/bin/env bash
# Everything that needs a CUDA GPU, in under 8 minutes, with one summary at the end:
#   1. the golden-output and fused-against-naive attention tests on the GPU (HAT_TEST_DEVICE=cuda);
#   2. a short `basicsr train` (python -m hat_arch.train) of the demo recipe under bf16 autocast;
#   3. a whole-image upscale under a GPU memory cap that it exceeds: the out-of-memory retry must finish it in tiles;
#   4. the benchmark's GPU table (fused attention under bf16 against the naive fp32 path).
# Usage, from anywhere:  bash benchmarks/gpu_check.sh      (PYTHON=... picks the interpreter; logs stay in $WORK)
# Each step has a time limit (their sum is 7.5 minutes); the exit status is 0 only if every step passed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python}
WORK=${WORK:-$(mktemp -d -t hat_gpu_check.XXXXXX)}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

GPU_TESTS="tests/archs/test_hat_arch.py::test_golden_outputs
tests/archs/test_attention_paths.py::test_fused_matches_naive_outputs_and_gradients
tests/archs/test_attention_paths.py::test_fused_matches_naive_in_eval_on_a_batch"
BENCH_FLAGS="--device cuda --amp bf16 --compare naive --mode infer --sizes 256 --model HAT_SRx4 HAT-L_SRx4"

SUMMARY=()
FAILED=0
# step NAME SECONDS COMMAND...: run it with a time limit, its output in $WORK/NAME.log; record the outcome.
step() {
    local name=$1 limit=$2 start=$SECONDS status
    shift 2
    echo "== $name (at most ${limit} s)"
    timeout "$limit" "$@" >"$WORK/$name.log" 2>&1
    case $? in
        0) status=passed ;;
        124) status="TIMED OUT after ${limit} s"; FAILED=1 ;;
        *) status=FAILED; FAILED=1 ;;
    esac
    [ "$status" = passed ] || tail -n 25 "$WORK/$name.log"
    SUMMARY+=("$(printf '%-16s %-24s %4d s   %s' "$name" "$status" $((SECONDS - start)) "$(tail -n 1 "$WORK/$name.log")")")
}

if ! "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "gpu_check: PyTorch ($PYTHON) sees no CUDA device; nothing was run" >&2
    exit 2
fi
"$PYTHON" -c 'import torch; print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__)'
cd "$ROOT" || exit 2

# shellcheck disable=SC2086  # the lists are meant to split into words
step tests 120 env HAT_TEST_DEVICE=cuda "$PYTHON" -m pytest -q $GPU_TESTS
step train-bf16 90 "$PYTHON" benchmarks/gpu_check.py train "$WORK"
step oom-upscale 60 "$PYTHON" benchmarks/gpu_check.py oom-upscale
# shellcheck disable=SC2086
step benchmark 180 "$PYTHON" benchmarks/bench_hat.py $BENCH_FLAGS
cat "$WORK/benchmark.log"

echo
echo "== summary (logs in $WORK)"
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
