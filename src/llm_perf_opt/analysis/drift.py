"""Drift gate for upstream revisions: trace a model source on pinned workloads and compare with golden trees.

``python -m llm_perf_opt.analysis.drift --model hf:deepseek-ai/DeepSeek-OCR@main --trust-remote-code --golden
third_party/deepseek-ai--DeepSeek-OCR/<revision>`` re-traces every workload that has a golden under
``<golden>/golden/``, compares node by node (:mod:`llm_perf_opt.tracer.golden`) and exits 1 naming every node that
moved; it also lists remote-code files whose sha256 differs from ``<golden>/code_hashes.json``. ``--write DIR`` writes
fresh goldens (and the code hashes) instead, for pinning a new revision. Works for every source: built-in,
``hf-snapshot:``, ``hf:`` and ``deepseek-ocr-2``; all goldens use eager attention (the only kind upstream v1 code runs
on CPU).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import field, frozen

from llm_perf_opt.analysis.model_source import source_provenance, trusted_source
from llm_perf_opt.errors import ConfigError, UserError
from llm_perf_opt.sources.deepseek_ocr2.source import Ocr2ModelSource
from llm_perf_opt.tracer.golden import compare_golden, golden_from_trace, read_golden, write_golden
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.workloads import Workload, preset_workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

__all__ = [
    "OCR2_WORKLOADS",
    "STANDARD_WORKLOADS",
    "DriftResult",
    "check",
    "check_traces",
    "golden_files",
    "main",
    "make_workload",
    "recorded_model",
    "trace_source",
    "write",
]

STANDARD_WORKLOADS: Mapping[str, Mapping[str, Any]] = {
    "dsocr-standard-v1": {"preset": "dsocr-standard-v1"},
    "base-1024-no-crops": {"mode": "base", "page": [1024, 1024], "max_new_tokens": 16},
    "gundam-1920x1080": {"mode": "gundam", "page": [1920, 1080], "max_new_tokens": 3},
}
"""The standard workload and two more: crops 2x2 with 512 tokens, no crops, a wide 4x2 grid."""

OCR2_WORKLOADS: Mapping[str, Mapping[str, Any]] = {
    "dynamic-1024x1024-n512": {"ocr2_mode": "dynamic", "page": [1024, 1024], "max_new_tokens": 512},
    "single-1024x1024": {"ocr2_mode": "single", "page": [1024, 1024], "max_new_tokens": 16},
    "dynamic-2480x3508": {"ocr2_mode": "dynamic", "page": [2480, 3508], "max_new_tokens": 3},
}
"""DeepSeek-OCR-2's: the standard page and length in its default mode, its single-view mode, an A4 page (2x3 tiles)."""


def make_workload(spec: Mapping[str, Any]) -> Any:
    """A workload from a golden's spec: a v1 preset id, v1 mode/page/prompt/N/batch, or an OCR-2 mode/page/..."""
    ocr2 = "ocr2_mode" in spec
    if "preset" in spec and not ocr2:
        return preset_workload(str(spec["preset"]))
    create = Ocr2Workload.create if ocr2 else Workload.create
    return create(
        mode=str(spec["ocr2_mode" if ocr2 else "mode"]),
        page=(int(spec["page"][0]), int(spec["page"][1])),
        prompt_tokens=int(spec.get("prompt_tokens", 9)),
        max_new_tokens=int(spec.get("max_new_tokens", 1)),
        batch_size=int(spec.get("batch_size", 1)),
    )


def trace_source(source: Any, workload: Any, *, model: Any = None) -> tuple[TraceResult, dict[str, Any]]:
    """Trace with eager attention through the source's driver: ``(TraceResult, provenance dict)``."""
    # lazy: tracing needs torch (seconds to import); checking a report against the trace cache does not
    from llm_perf_opt.tracer.trace import trace_with_driver

    result, driver = trace_with_driver(source, workload, attention="eager", model=model)
    return result, source_provenance(source, driver) or {"source": source.name}


def _code_changes(golden_dir: Path, provenance: Mapping[str, Any]) -> list[str]:
    path = golden_dir / "code_hashes.json"
    if not path.is_file():
        return []
    pinned: dict[str, str] = json.loads(path.read_text(encoding="utf-8")).get("sha256", {})
    current: Mapping[str, str] = provenance.get("code_hashes", {})
    out = [
        f"{name}: sha256 {pinned[name]} -> {current.get(name, 'missing')}"
        for name in sorted(pinned)
        if pinned[name] != current.get(name)
    ]
    out += [f"{name}: new file sha256 {current[name]}" for name in sorted(set(current) - set(pinned))]
    return out


def _git_blobs(source: Any) -> dict[str, str]:
    """Git blob ids of the code files (what mirrors on GitHub can be matched by)."""
    snapshot = getattr(source, "snapshot", None)
    if snapshot is None:
        return {}
    return {
        name: hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() for name, data in sorted(snapshot.code.items())
    }


def write(model: str, out: Path, *, trust: bool, names: Sequence[str] | None = None) -> None:
    """Trace the standard workloads (``names`` of them) and write goldens (and code hashes) under ``out``."""
    source = trusted_source(model, trust)
    table = OCR2_WORKLOADS if isinstance(source, Ocr2ModelSource) else STANDARD_WORKLOADS
    built = source.build(attn_implementation="eager")
    provenance: dict[str, Any] = {}
    for name in names or list(table):
        spec = table[name]
        result, provenance = trace_source(source, make_workload(spec), model=built)
        golden = golden_from_trace(result, source={"model": model, "workload_spec": dict(spec), **provenance})
        write_golden(out / "golden" / f"{name}.json", golden)
        print(f"wrote {out / 'golden' / f'{name}.json'} ({len(result.nodes)} nodes)")
    if provenance.get("code_hashes"):
        hashes = {
            "source": model,
            "hf_revision": provenance.get("hf_revision"),
            "config_sha256": provenance.get("config_sha256"),
            "sha256": provenance["code_hashes"],
            "git_blob": _git_blobs(source),
        }
        (out / "code_hashes.json").write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n", encoding="utf-8")


@frozen(kw_only=True)
class DriftResult:
    """Fresh traces of a model source compared with pinned goldens."""

    model: str = field(metadata={"help": "the model source that was traced"})
    problems: tuple[str, ...] = field(metadata={"help": "tree/count differences, '[workload] node: ...' each"})
    code_changes: tuple[str, ...] = field(metadata={"help": "remote-code files whose sha256 differs from the pin"})
    fresh: Mapping[str, Mapping[str, Any]] = field(metadata={"help": "workload -> fresh golden (with provenance)"})


def golden_files(golden_dir: Path, names: Sequence[str] | None = None) -> list[Path]:
    """The golden files under ``golden_dir/golden`` (all, or those named), sorted."""
    return sorted(p for p in (golden_dir / "golden").glob("*.json") if names is None or p.stem in names)


def recorded_model(golden_dir: Path) -> str:
    """The model source the goldens under ``golden_dir`` were traced from (their ``source.model``)."""
    files = golden_files(golden_dir)
    if not files:
        raise ConfigError(f"no goldens under {golden_dir / 'golden'}; write them with --write")
    model = read_golden(files[0]).get("source", {}).get("model")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"golden {files[0]} does not record its model source; pass --model")
    return model


def check_traces(
    model: str,
    golden_dir: Path,
    *,
    trust: bool,
    names: Sequence[str] | None = None,
    progress: Any = None,
    counts_only: bool = False,
) -> DriftResult:
    """Trace ``model`` on the workload of every golden under ``golden_dir/golden`` (or the ``names`` given) and
    compare node by node; remote-code files are compared with ``golden_dir/code_hashes.json``."""
    source = trusted_source(model, trust)
    files = golden_files(golden_dir, names)
    if not files:
        raise ConfigError(f"no goldens under {golden_dir / 'golden'}; write them with --write")
    built = source.build(attn_implementation="eager")
    problems: list[str] = []
    fresh: dict[str, Mapping[str, Any]] = {}
    provenance: dict[str, Any] = {}
    for path in files:
        golden = read_golden(path)
        spec = golden["source"]["workload_spec"]
        if progress is not None:
            progress(f"tracing {model} for golden {path.stem}")
        result, provenance = trace_source(source, make_workload(spec), model=built)
        candidate = golden_from_trace(result, source={"model": model, "workload_spec": dict(spec), **provenance})
        fresh[path.stem] = candidate
        problems += [f"[{path.stem}] {p}" for p in compare_golden(golden, candidate, counts_only=counts_only)]
    return DriftResult(
        model=model,
        problems=tuple(problems),
        code_changes=tuple(_code_changes(golden_dir, provenance)),
        fresh=fresh,
    )


def check(model: str, golden_dir: Path, *, trust: bool, names: Sequence[str] | None = None) -> list[str]:
    """Every difference between fresh traces of ``model`` and the goldens under ``golden_dir/golden`` (all of them,
    or the ``names`` given): ``[code] ...`` lines first, then ``[workload] node: ...`` lines."""
    result = check_traces(model, golden_dir, trust=trust, names=names)
    return [f"[code] {c}" for c in result.code_changes] + list(result.problems)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_perf_opt.analysis.drift", description=__doc__)
    parser.add_argument("--model", required=True, help="model source (hf:REPO@REV, hf-snapshot:PATH, built-in name)")
    parser.add_argument("--golden", type=Path, help="pinned folder holding golden/*.json (and code_hashes.json)")
    parser.add_argument("--write", type=Path, help="write fresh goldens to this folder instead of checking")
    parser.add_argument("--workload", action="append", help="only this golden/standard workload (default: all)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the source's remote code to run")
    args = parser.parse_args(argv)
    try:
        if args.write is not None:
            write(args.model, args.write, trust=args.trust_remote_code, names=args.workload)
            return 0
        if args.golden is None:
            raise UserError("give --golden DIR to check against, or --write DIR to pin")
        problems = check(args.model, args.golden, trust=args.trust_remote_code, names=args.workload)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    code = [p for p in problems if p.startswith("[code]")]
    tree = [p for p in problems if not p.startswith("[code]")]
    for line in problems:
        print(line)
    print(f"drift: {len(tree)} tree/count difference(s), {len(code)} code file change(s) vs {args.golden}")
    return 1 if tree else 0


if __name__ == "__main__":
    sys.exit(main())
