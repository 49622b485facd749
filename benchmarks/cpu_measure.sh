#!/usr/bin/env bash
# The CPU measurements committed under benchmarks/measurements/ (no GPU needed; about a minute on one core).
#
#   bash benchmarks/cpu_measure.sh
#
# deepseek-ocr-v1-tiny (random weights, fp32, one thread) on two small deterministic workloads - a 512x512 page in
# Tiny mode (S=83) and a 1024x1024 page in Base mode (S=283), 16 new tokens each - with eager and SDPA attention:
# 1 warm-up run and 10 timed runs per measurement, summarised by their minimum (the machine these were made on is
# shared with other processes, which only ever add time). Then it regenerates docs/validation.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT=benchmarks/measurements

for spec in tiny:512x512 base:1024x1024; do
  mode="${spec%%:*}"
  page="${spec#*:}"
  for attention in eager sdpa; do
    out="$OUT/cpu-tiny-${mode}-${page}-fp32-${attention}.json"
    echo "== measure $mode $page $attention -> $out"
    "$PY" -c 'import sys; from llm_perf_opt.cli import main; main(sys.argv[1:])' \
      measure --model deepseek-ocr-v1-tiny --runtime-device cpu --threads 1 --mode "$mode" --page "$page" \
      --max-new-tokens 16 --attention "$attention" --warmup 1 --repeats 10 --statistic min \
      --notes "benchmarks/cpu_measure.sh" --out "$out"
  done
done

echo "== validation-doc"
"$PY" -c 'import sys; from llm_perf_opt.cli import main; main(sys.argv[1:])' validation-doc
