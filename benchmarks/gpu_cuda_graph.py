"""HF static cache + CUDA graphs on one GPU: the measurement behind the ``hf-cuda-graph`` runtime (issue 14).

    python benchmarks/gpu_cuda_graph.py [--batches 1,8,32] [--prompt-tokens 256] [--new-tokens 64]

transformers' own DeepSeek-OCR-2 (``DeepseekOcr2ForConditionalGeneration``, transformers >= 5.10.1; the decoder is
DeepSeek-OCR's DeepSeek-V2 MoE with MHA) with random bf16 weights, text-only prompts of random token ids, greedy
generation of exactly ``--new-tokens`` tokens, at each batch size, two ways:

* ``eager``: ``generate()`` with the default dynamic cache (what ``hf-eager`` / ``hf-flash`` model, SDPA attention);
* ``static-graphs``: ``generate(cache_implementation="static")`` with the model's forward wrapped in
  ``torch.compile(mode="reduce-overhead")`` (CUDA graphs; graph breaks, e.g. a data-dependent expert loop, run
  eager between graphs), as transformers' "Optimizing inference" guide does - what ``hf-cuda-graph`` models.
  generate's own auto-compilation is turned off so the one compiled forward is the one timed.

TTFT is a ``max_new_tokens=1`` call, TPOT ``(T(N) - T(1)) / (N - 1)``; each the minimum of ``--repeats`` timed calls
after ``--warmup`` untimed ones (compilation and graph capture happen there). The JSON written next to
``benchmarks/measurements`` also holds what ``llm_perf_opt.runtimes`` predicts for the same requests (``hf-flash``
for eager, ``hf-cuda-graph`` for static-graphs) on ``--device-id``, so the file shows the error directly.

``--smoke`` runs a 2-layer, 8-expert model on the CPU without compilation (checks the script, times nothing real).
Needs torch, transformers >= 5.10.1 (``pip install -e .[hf]``; offline: PYTHONPATH=<a folder holding it>), attrs,
cattrs, pyyaml; ``src/`` on PYTHONPATH. Nothing here runs in the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from llm_perf_opt.measure.environment import guess_device_id  # noqa: E402
from llm_perf_opt.runtimes import single_request_times  # noqa: E402
from llm_perf_opt.sources.deepseek_ocr2.config import analytic_config, ocr2_config_kwargs  # noqa: E402
from llm_perf_opt.workloads.ocr2 import Ocr2Workload  # noqa: E402


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8,32", help="batch sizes, comma-separated [1,8,32]")
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device-id", default=None, help="hardware catalog id [guessed from the GPU name]")
    parser.add_argument("--out", type=Path, default=None, help="JSON file [benchmarks/measurements/<gpu>-...json]")
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU, no compilation")
    return parser.parse_args(argv)


def _model(smoke: bool, device: torch.device) -> Any:
    from transformers import DeepseekOcr2Config, DeepseekOcr2ForConditionalGeneration

    kwargs = ocr2_config_kwargs()
    if smoke:
        text = dict(kwargs["text_config"])
        text.update(num_hidden_layers=2, n_routed_experts=8, num_experts_per_tok=2, hidden_size=256)
        text.update(mlp_layer_types=["dense", "sparse"])
        text.update(intermediate_size=512, moe_intermediate_size=64, num_attention_heads=4, num_key_value_heads=4)
        kwargs = {**kwargs, "text_config": text}
    config = DeepseekOcr2Config(**kwargs)
    torch.manual_seed(0)
    with torch.device(device):
        model = DeepseekOcr2ForConditionalGeneration(config)
    model.to(torch.float32 if smoke else torch.bfloat16).eval().requires_grad_(False)
    model.set_attn_implementation("sdpa")
    return model


def _timed(call: Callable[[], Any], *, warmup: int, repeats: int, cuda: bool) -> float:
    for _ in range(warmup):
        call()
    best = float("inf")
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def _generate(model: Any, ids: torch.Tensor, new: int, static: bool) -> Callable[[], Any]:
    extra: dict[str, Any] = {"cache_implementation": "static", "disable_compile": True} if static else {}
    mask = torch.ones_like(ids)

    def call() -> Any:
        with torch.inference_mode(), _forward(model, compiled=static and ids.is_cuda):
            return model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new,
                min_new_tokens=new,
                do_sample=False,
                pad_token_id=0,
                **extra,
            )

    return call


_COMPILED: dict[int, Any] = {}


@contextmanager
def _forward(model: Any, *, compiled: bool) -> Iterator[None]:
    """Run with the model's forward compiled (``mode="reduce-overhead"``: CUDA graphs), restored afterwards; the
    compiled wrapper is built once per model and kept, so its graphs are captured once per shape."""
    if not compiled:
        yield
        return
    eager = model.forward
    if id(model) not in _COMPILED:
        _COMPILED[id(model)] = torch.compile(eager, mode="reduce-overhead", fullgraph=False, dynamic=False)
    model.forward = _COMPILED[id(model)]
    try:
        yield
    finally:
        model.forward = eager


def _predicted(runtime: str, device_id: str, *, batch: int, prompt: int, new: int) -> dict[str, float]:
    workload = Ocr2Workload.create(
        mode="single", page=(1024, 1024), max_new_tokens=new, prompt_tokens=prompt - 1, batch_size=batch
    )
    times = single_request_times(
        runtime=runtime, config=analytic_config(), device=device_id, workload=workload, text_only=True
    )
    return {"ttft_ms": times.ttft_s * 1e3, "tpot_ms": times.tpot_s * 1e3}


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    cuda = not args.smoke
    if cuda and not torch.cuda.is_available():
        print("error: no CUDA GPU visible to torch (use --smoke to check the script on the CPU)", file=sys.stderr)
        return 1
    device = torch.device("cuda" if cuda else "cpu")
    name = torch.cuda.get_device_name() if cuda else "cpu"
    device_id = args.device_id or guess_device_id(name) or "h100-sxm"
    model = _model(args.smoke, device)
    import transformers

    rows: list[dict[str, Any]] = []
    for batch in (int(b) for b in args.batches.split(",")):
        ids = torch.randint(10, 1000, (batch, args.prompt_tokens), device=device)
        for way, static, runtime in (("eager", False, "hf-flash"), ("static-graphs", True, "hf-cuda-graph")):
            if static and args.smoke:
                continue  # compilation is what the GPU run measures; the smoke run only checks the code path
            first = _timed(_generate(model, ids, 1, static), warmup=args.warmup, repeats=args.repeats, cuda=cuda)
            full = _timed(
                _generate(model, ids, args.new_tokens, static), warmup=args.warmup, repeats=args.repeats, cuda=cuda
            )
            tpot = (full - first) / max(args.new_tokens - 1, 1)
            row = {"batch": batch, "way": way, "ttft_ms": first * 1e3, "tpot_ms": tpot * 1e3}
            if not args.smoke:
                row["predicted"] = {
                    runtime: _predicted(runtime, device_id, batch=batch, prompt=args.prompt_tokens, new=args.new_tokens)
                }
            rows.append(row)
            print(json.dumps(row), flush=True)
    record = {
        "what": "HF generate, eager dynamic cache vs static cache with the forward in torch.compile(reduce-overhead)",
        "model": "deepseek-ocr-2 (transformers DeepseekOcr2ForConditionalGeneration, random weights)",
        "device": name,
        "device_id": device_id,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "statistic": f"min of {args.repeats} after {args.warmup} warm-up calls",
        "smoke": args.smoke,
        "rows": rows,
    }
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    out = args.out or ROOT / "benchmarks" / "measurements" / f"{slug}-ocr2-hf-cuda-graph.json"
    if args.smoke and args.out is None:
        out = Path("/tmp") / out.name
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
