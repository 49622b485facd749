#!/usr/bin/env bash
# Measured validation on one CUDA GPU, in one go: four measurements capped at 120 s each and the page capped at
# 120 s, so it ends within ten minutes whatever happens (expected: a few minutes on an H100).
#
#   bash benchmarks/gpu_measure.sh
#
# Runs `llm-perf-opt measure` for the built-in deepseek-ocr-v1-base (random weights, bf16) on the workloads
# dsocr-standard-v1 (Gundam, 2x2 crops, S=703) and dsocr-base-v1 (Base mode, S=283), 512 new tokens each, with eager
# and SDPA attention: 1 warm-up run (prefill + 32 decode steps) and REPEATS timed runs per measurement. Then it
# regenerates docs/validation.md from benchmarks/measurements/*.json. Commit the new JSON files and the page afterwards.
#
# Needs: a CUDA build of torch plus attrs, cattrs, click, pyyaml (the package need not be installed: src/ is put on
# PYTHONPATH). PYTHON picks the interpreter (default python3). DEVICE_ID names the hardware catalog entry when the GPU
# name does not give it (see `llm-perf-opt devices`), e.g. DEVICE_ID=h100-pcie. REPEATS sets the timed runs (default 3, so
# that the median survives one run slowed by the host: decode at batch 1 is host-bound; use 2 if a run hits its cap). SKIP_DOC=1 skips the page (regenerate it where CI's torch runs).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT=benchmarks/measurements

"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA GPU visible to torch")'
gpu=$("$PY" -c 'import re, torch; print(re.sub("[^a-z0-9]+", "-", torch.cuda.get_device_name().lower()).strip("-"))')
device_flag=()
if [[ -n "${DEVICE_ID:-}" ]]; then device_flag=(--device-id "$DEVICE_ID"); fi

failed=0
for workload in dsocr-standard-v1 dsocr-base-v1; do
  for attention in eager sdpa; do
    out="$OUT/${gpu}-base-${workload}-bf16-${attention}.json"
    echo "== measure $workload $attention -> $out"
    if ! timeout 120 "$PY" -c 'import sys; from llm_perf_opt.cli import main; main(sys.argv[1:])' \
      measure --model deepseek-ocr-v1-base --runtime-device cuda --dtype bf16 --workload "$workload" \
      --attention "$attention" --warmup 1 --warmup-decode-steps 32 --repeats "${REPEATS:-3}" ${device_flag[@]+"${device_flag[@]}"} \
      --notes "benchmarks/gpu_measure.sh" --out "$out"; then
      echo "!! measure $workload $attention failed or ran past 120 s; continuing with the others" >&2
      failed=1
    fi
  done
done

if [[ -z "${SKIP_DOC:-}" ]]; then
  echo "== validation-doc"
  timeout 120 "$PY" -c 'import sys; from llm_perf_opt.cli import main; main(sys.argv[1:])' validation-doc
fi
echo "done: commit $OUT/${gpu}-*.json and docs/validation.md"
exit "$failed"
