#!/usr/bin/env bash
# Peak memory per stage on one CUDA GPU: deepseek-ocr-v1-base (random weights, bf16, SDPA, balanced routing) at batch
# 1, 8 and 32 on dsocr-standard-v1 and dsocr-base-v1, 8 new tokens (memory is the point: one short timed run each,
# then the untimed run every `measure` makes for memory - torch.cuda.max_memory_allocated reset at every stage
# boundary, plus the reserved figure). About 3 minutes on an H100; every process is capped.
#
#   bash benchmarks/gpu_memory.sh
#
# Files go to benchmarks/measurements/memory/ (the validation page compares their memory, and keeps them out of the
# time calibration: one cold repeat is no timing). Then docs/validation.md is regenerated unless SKIP_DOC=1.
# A batch that does not fit stops that workload's sweep (the out-of-memory message is kept in the log).
# Needs: a CUDA build of torch plus attrs, cattrs, click, pyyaml. PYTHON picks the interpreter (default python3);
# DEVICE_ID names the hardware catalog entry when the GPU name does not give it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT=benchmarks/measurements/memory
mkdir -p "$OUT"

"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA GPU visible to torch")'
gpu=$("$PY" -c 'import re, torch; print(re.sub("[^a-z0-9]+", "-", torch.cuda.get_device_name().lower()).strip("-"))')
device_flag=()
if [[ -n "${DEVICE_ID:-}" ]]; then device_flag=(--device-id "$DEVICE_ID"); fi

for workload in dsocr-standard-v1 dsocr-base-v1; do
  for batch in 1 8 32; do
    out="$OUT/${gpu}-base-${workload}-b${batch}-t8-bf16-sdpa.json"
    echo "== $workload batch $batch -> $out"
    if ! timeout 240 "$PY" -c 'import sys; from llm_perf_opt.cli import main; main(sys.argv[1:])' \
      measure --model deepseek-ocr-v1-base --runtime-device cuda --dtype bf16 --attention sdpa --routing balanced \
      --workload "$workload" --batch "$batch" --max-new-tokens 8 --warmup 0 --repeats 1 --no-profile --no-benchmark \
      ${device_flag[@]+"${device_flag[@]}"} --notes "benchmarks/gpu_memory.sh" --out "$out"; then
      echo "   batch $batch did not run to the end (out of memory or over the cap); larger batches skipped"
      break
    fi
  done
done

if [[ -z "${SKIP_DOC:-}" ]]; then
  "$PY" -c 'import sys; from llm_perf_opt.cli import main; main(sys.argv[1:])' validation-doc
fi
