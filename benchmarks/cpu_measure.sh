#!/usr/bin/env bash
# The CPU measurements committed under benchmarks/measurements/ (no GPU needed; about a minute on one core).
#
#   bash benchmarks/cpu_measure.sh
#
# deepseek-ocr-v1-tiny (random weights, fp32, one thread) on two small deterministic workloads - a 512x512 page in
# Tiny mode (S=83) and a 1024x1024 page in Base mode (S=283), 16 new tokens each - with eager and SDPA attention:
# 1 warm-up run and 10 timed runs per measurement, summarised by their minimum (the machine these were made on is
# shared with other processes, which only ever add time).
#
# Then deepseek-ocr-v1-base (random weights, fp32: about 13.3 GB of weights, ~17 GB of RAM in all; one thread) on
# the same two workloads, 8 new tokens, eager attention, balanced MoE routing (what predictions assume: the expert
# slices then have the traced shapes), 1 warm-up and 3 timed runs - for peak memory per stage, which every
# measurement records in one extra untimed run; written to measurements/memory/ (compared for memory only). PARTS=tiny or PARTS=base runs one half. Then it regenerates
# docs/validation.md (SKIP_DOC=1 skips that).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT=benchmarks/measurements

PARTS="${PARTS:-tiny base}"

for spec in tiny:512x512 base:1024x1024; do
  [[ " $PARTS " == *" tiny "* ]] || break
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

for spec in tiny:512x512 base:1024x1024; do
  [[ " $PARTS " == *" base "* ]] || break
  mode="${spec%%:*}"
  page="${spec#*:}"
  out="$OUT/memory/cpu-base-${mode}-${page}-fp32-eager.json"
  echo "== measure deepseek-ocr-v1-base $mode $page eager -> $out"
  "$PY" -c 'import sys; from llm_perf_opt.cli import main; main(sys.argv[1:])' \
    measure --model deepseek-ocr-v1-base --runtime-device cpu --threads 1 --mode "$mode" --page "$page" \
    --max-new-tokens 8 --attention eager --routing balanced --warmup 1 --repeats 3 --statistic min \
    --notes "benchmarks/cpu_measure.sh (base model)" --out "$out"
done

if [[ -z "${SKIP_DOC:-}" ]]; then
  echo "== validation-doc"
  "$PY" -c 'import sys; from llm_perf_opt.cli import main; main(sys.argv[1:])' validation-doc
fi
