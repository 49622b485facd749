#!/usr/bin/env bash
# Measured validation on one CUDA GPU, in one go (expected: about 5 minutes on an H100; every process is capped, so it
# ends within ten minutes whatever happens).
#
#   bash benchmarks/gpu_measure.sh
#
# Runs `llm-perf-opt measure` for the built-in deepseek-ocr-v1-base (random weights, bf16, --routing balanced: the MoE
# runs the balanced expert slices the predictions assume - random weights would send similar tokens to the same
# experts - while the host still reads the gate's counts once per layer, as upstream does):
#   * dsocr-standard-v1 (Gundam, 2x2 crops, S=703) and dsocr-base-v1 (Base mode, S=283), 512 new tokens each, eager
#     and SDPA decoder attention timed round-robin in one process per workload (a slow spell of the host - batch-1
#     decoding is host-bound - then hits both attentions alike), 1 warm-up run each (prefill + 32 decode steps) and
#     REPEATS timed runs summarised by their minimum (host noise only ever slows a run down);
#   * dsocr-base-v1 at batch 4 with 128 new tokens, SDPA: 24 experts per MoE layer in a decode step instead of 6, a
#     different mix of kernels behind the per-stage host times.
#   * HF static cache + CUDA graphs (issue 14's check of the hf-cuda-graph runtime): benchmarks/gpu_cuda_graph.py at
#     batch 1, 8 and 32 - transformers' DeepSeek-OCR-2 with random weights, eager dynamic cache against
#     generate(cache_implementation="static") (torch.compile reduce-overhead), TTFT and TPOT next to what the hf-flash
#     and hf-cuda-graph runtimes predict; needs transformers >= 5.10.1 importable (skipped with a line otherwise, or
#     with SKIP_CUDA_GRAPH=1), capped at 4 minutes.
# Then it regenerates docs/validation.md from benchmarks/measurements/*.json unless SKIP_DOC=1 (the page traces every
# measured workload on the meta device: about two minutes; regenerate it where CI's torch runs). Commit the new JSON
# files and the page afterwards.
#
# Needs: a CUDA build of torch plus attrs, cattrs, click, pyyaml (the package need not be installed: src/ is put on
# PYTHONPATH). PYTHON picks the interpreter (default python3). DEVICE_ID names the hardware catalog entry when the GPU
# name does not give it (see `llm-perf-opt devices`), e.g. DEVICE_ID=h100-pcie. REPEATS sets the timed runs (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT=benchmarks/measurements

"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA GPU visible to torch")'
gpu=$("$PY" -c 'import re, torch; print(re.sub("[^a-z0-9]+", "-", torch.cuda.get_device_name().lower()).strip("-"))')
device_flag=()
if [[ -n "${DEVICE_ID:-}" ]]; then device_flag=(--device-id "$DEVICE_ID"); fi

measure() {  # measure CAP_SECONDS ARGS...
  local cap=$1
  shift
  timeout "$cap" "$PY" -c 'import sys; from llm_perf_opt.cli import main; main(sys.argv[1:])' \
    measure --model deepseek-ocr-v1-base --runtime-device cuda --dtype bf16 --statistic min --routing balanced \
    --warmup 1 --warmup-decode-steps 32 --repeats "${REPEATS:-3}" ${device_flag[@]+"${device_flag[@]}"} \
    --notes "benchmarks/gpu_measure.sh" "$@"
}

failed=0
for workload in dsocr-standard-v1 dsocr-base-v1; do
  out="$OUT/${gpu}-base-${workload}-bf16-{attention}.json"
  echo "== measure $workload eager+sdpa -> $out"
  if ! measure 210 --workload "$workload" --attention eager --attention sdpa --out "$out"; then
    echo "!! measure $workload failed or ran past its cap; continuing" >&2
    failed=1
  fi
done
out="$OUT/${gpu}-base-dsocr-base-v1-b4-t128-bf16-sdpa.json"
echo "== measure dsocr-base-v1 batch 4, 128 new tokens, sdpa -> $out"
if ! measure 100 --workload dsocr-base-v1 --batch 4 --max-new-tokens 128 --attention sdpa --out "$out"; then
  echo "!! measure batch 4 failed or ran past its cap" >&2
  failed=1
fi

if [[ -n "${SKIP_CUDA_GRAPH:-}" ]]; then
  echo "== hf-cuda-graph: skipped (SKIP_CUDA_GRAPH)"
elif "$PY" -c 'import transformers, sys; sys.exit(0 if hasattr(transformers, "DeepseekOcr2ForConditionalGeneration") else 1)' 2>/dev/null; then
  echo "== hf-cuda-graph: static cache + CUDA graphs at batch 1, 8, 32"
  if ! timeout 240 "$PY" benchmarks/gpu_cuda_graph.py --batches 1,8,32 ${DEVICE_ID:+--device-id "$DEVICE_ID"}; then
    echo "!! gpu_cuda_graph.py failed or ran past its cap" >&2
    failed=1
  fi
else
  echo "== hf-cuda-graph: skipped (transformers >= 5.10.1 with DeepSeek-OCR-2 is not importable)" >&2
fi

if [[ -z "${SKIP_DOC:-}" ]]; then
  echo "== validation-doc"
  timeout 150 "$PY" -c 'import sys; from llm_perf_opt.cli import main; main(sys.argv[1:])' validation-doc
fi
echo "done: commit $OUT/${gpu}-*.json (the -ocr2-hf-cuda-graph.json one too) and docs/validation.md"
exit "$failed"
