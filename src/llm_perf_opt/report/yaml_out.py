"""``report.yaml``: the whole analysis as one YAML document for people and scripts.

SI units with the unit in every key (``*_flops``, ``*_bytes``, ``*_ms``), exact integers for counts, floats
rounded in one place (:func:`llm_perf_opt.analysis.assemble.rounded`), keys in a fixed order - deterministic bytes.
Sections: ``report``, ``workload``, ``device``, ``time``, ``memory``, ``top_modules``, ``categories``,
``validation``, ``coverage``, ``assumptions``, ``modules`` (one compact entry per node of ``model.json``).
"""

from __future__ import annotations

from typing import Any

import yaml

from llm_perf_opt.analysis.assemble import rounded
from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.contracts import unstructure
from llm_perf_opt.report.stage_view import eager_note, runtime_timed, stage_bound

__all__ = ["render_report_yaml", "report_mapping"]


def report_mapping(result: AnalysisResult) -> dict[str, Any]:
    """The YAML document as plain data (also handy for JSON)."""
    r = result
    return {
        "report": _report(r),
        "workload": _workload(r),
        "device": _device(r),
        "time": _time(r),
        "memory": _memory(r),
        "top_modules": unstructure(r.summary)["top_modules"],
        "categories": _categories(r),
        "validation": {
            "summary": _plain(dict(r.validation_summary)),
            "divergences": _plain(list(r.validation.get("divergences", []))),
        },
        "coverage": {
            "unsupported_ops": [
                {"op": u.op, "count": u.count, "module_paths": list(u.module_paths)} for u in r.trace.unsupported
            ],
            "uncalled_modules": list(r.trace.uncalled_modules),
            "other_flops_share": rounded(r.trace.other_flops_share()),
        },
        "assumptions": list(r.assumptions),
        "modules": _modules(r),
    }


def render_report_yaml(result: AnalysisResult) -> str:
    """``report.yaml`` text."""
    return yaml.dump(report_mapping(result), Dumper=_DUMPER, sort_keys=False, allow_unicode=True, width=120)


_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""libyaml's emitter when PyYAML was built with it (about 5x faster on the ``modules`` section, the same bytes:
checked by ``tests/report``), else the pure-Python one."""


def _plain(value: Any) -> Any:
    """JSON-like data with floats rounded and tuples as lists (safe for yaml.safe_dump)."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return rounded(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def _report(r: AnalysisResult) -> dict[str, Any]:
    options = {
        "model": r.options.model,
        "workload_id": r.options.workload_id,
        "mode": r.options.mode,
        "page": list(r.options.page) if r.options.page else None,
        "prompt_tokens": r.options.prompt_tokens,
        "max_new_tokens": r.options.max_new_tokens,
        "batch_size": r.options.batch_size,
        "device": r.options.device,
        "dtype": r.dtype,
        "attention": r.options.attention,
        "routing": r.options.routing,
    }
    return {
        "report_id": r.report_id,
        "model_variant": r.model.model.model_variant,
        "model_source": r.model_source,
        "options": options,
        "attention": r.trace.attention,
        "runtime": r.options.runtime,
        "routing": r.trace.routing,
        "decode_method": r.trace.decode_method,
        "decode_note": r.trace.decode_note,
    }


def _workload(r: AnalysisResult) -> dict[str, Any]:
    w = r.workload
    return {
        "profile_id": w.profile_id,
        "mode": w.mode.name,
        "base_size": w.mode.base_size,
        "image_size": w.mode.image_size,
        "crop_mode": w.mode.crop_mode,
        "page": [w.page_width, w.page_height],
        "grid": list(w.grid),
        "num_crops": w.num_crops,
        "global_tokens": w.global_tokens,
        "local_tokens": w.local_tokens,
        "image_tokens": w.image_tokens,
        "prompt_tokens": w.prompt_tokens,
        "seq_len": w.seq_len,
        "max_new_tokens": w.max_new_tokens,
        "decode_steps": w.decode_steps,
        "final_kv_len": w.final_kv_len,
        "batch_size": w.batch_size,
    }


def _device(r: AnalysisResult) -> dict[str, Any]:
    d = r.device
    return {
        "device_id": d.device_id,
        "name": d.name,
        "dtype": r.dtype,
        "matmul_peak_flops_per_s": d.matmul_peak_flops(r.dtype),
        "vector_peak_flops_per_s": d.vector_peak_flops,
        "memory_bandwidth_bytes_per_s": d.memory_bandwidth_bytes_per_s,
        "memory_capacity_bytes": d.memory_capacity_bytes,
        "source": d.source,
        "source_date": d.source_date,
        "profile": _plain(r.profile.as_dict()),
    }


def _time(r: AnalysisResult) -> dict[str, Any]:
    stages: dict[str, float | None] = {k: rounded(v) for k, v in r.stages.as_ms().items()}
    if not r.stages.decode_steps:
        stages["tpot_ms"] = None  # no decode step: there is no time per output token, not a zero one
    bounds = {}
    for stage in ("vision", "projector", "prefill", "decode", "other", "root"):
        bound = stage_bound(r, stage)
        if bound is not None:
            bounds[stage] = {
                "compute_bound_ms": rounded(bound.compute_s * 1e3),
                "memory_bound_ms": rounded(bound.memory_s * 1e3),
                "overhead_ms": rounded(bound.overhead_s * 1e3),
            }
    return {
        "stages_ms": stages,
        "decode_steps": r.stages.decode_steps,
        "bounds": bounds,
        **({"per_module_times": eager_note(r).replace("**", "")} if runtime_timed(r) else {}),
        "throughput": _throughput(r),
        "measured": _plain(dict(r.measured)) if r.measured else None,
    }


def _throughput(r: AnalysisResult) -> dict[str, Any]:
    """Rates at the analysed batch; null when the configuration does not fit the device (as report.md and
    ``analyze --format json`` say), page rates null for a text-only request (it reads no page)."""
    t, fits, pages = r.throughput, r.capacity.fits, not r.workload.text_only

    def rate(value: float, *, per_page: bool = False) -> float | None:
        return rounded(value) if fits and (pages or not per_page) else None

    return {
        "batch_size": t.batch_size,
        "tokens_per_s": rate(t.tokens_per_s),
        "decode_tokens_per_s": rate(t.decode_tokens_per_s) if r.stages.decode_steps else None,
        "pages_per_s": rate(t.pages_per_s, per_page=True),
        "pages_per_day": rate(t.pages_per_day, per_page=True),
    }


def _memory(r: AnalysisResult) -> dict[str, Any]:
    m, c = r.memory, r.capacity
    return {
        "weights_bytes": m.weights_bytes,
        "kv_cache_bytes": m.kv_cache_bytes,
        "peak_activation_bytes": m.peak_activation_bytes,
        "total_bytes": m.total_bytes,
        "capacity_bytes": c.capacity_bytes,
        "fits": c.fits,
        "max_batch": c.max_batch,
    }


def _categories(r: AnalysisResult) -> dict[str, Any]:
    root = r.trace.root
    times = r.timed.nodes["root"].by_category_s
    out: dict[str, Any] = {}
    for cat in sorted(set(root.by_category) | set(times)):
        cost = root.by_category.get(cat)
        out[cat] = {
            "time_ms": rounded(times.get(cat, 0.0) * 1e3),
            "matmul_flops": cost.matmul_flops if cost else 0,
            "vector_flops": cost.vector_flops if cost else 0,
            "bytes": cost.total_bytes if cost else 0,
            "kernels": cost.kernels if cost else 0,
        }
    return out


def _modules(r: AnalysisResult) -> list[dict[str, Any]]:
    rows = []
    for node in r.trace.walk():
        timed = r.timed.nodes.get(node.module_id)
        rows.append(
            {
                "module_id": node.module_id,
                "class": node.qualified_class_name.rsplit(".", 1)[-1],
                "stage": node.stage,
                "repetition": node.repetition,
                "repetition_count": node.repetition_count,
                "calls": node.calls,
                "matmul_flops": node.cost.matmul_flops,
                "vector_flops": node.cost.vector_flops,
                "bytes": node.cost.total_bytes,
                "weight_bytes": node.weight_bytes,
                "time_ms": rounded(timed.total_s * 1e3) if timed else None,
            }
        )
    return rows
