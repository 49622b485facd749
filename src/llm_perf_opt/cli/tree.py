"""``llm-perf-opt tree``: the model's module tree, built on the meta device (no weights).

``--flat --format json`` prints one JSON object per module, in ``named_modules()`` order (the root first, path ``""``):
``{"path": ..., "class_name": ..., "own_params": ..., "params": ...}`` - parameters registered directly on the module
and the inclusive count; ``--flat --format text`` the same as aligned lines.  Without ``--flat`` the workload is
traced and the grouped tree is printed (repeated blocks folded, per-stage nodes, for/parfor counts, parameters,
constructor parameters): as text, or with ``--format json`` as node records that ``llm-perf-opt diff`` compares
(:mod:`llm_perf_opt.report.tree_text`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from llm_perf_opt.analysis.options import AnalysisOptions, default_attention
from llm_perf_opt.cli.progress import StepProgress
from llm_perf_opt.errors import UserError
from llm_perf_opt.report.tree_text import tree_records, tree_text
from llm_perf_opt.workloads import DEFAULT_PRESET_ID

if TYPE_CHECKING:
    # lazy: torch loads only when the command runs (--help imports every command module)
    from torch import nn

__all__ = ["module_records", "tree"]

_DEFAULT_MODEL = "deepseek-ocr-v1-base"  # = llm_perf_opt.sources.DEFAULT_MODEL_SOURCE (not imported: torch)


def module_records(model: nn.Module) -> list[dict[str, Any]]:
    """One record per module of ``model`` in ``named_modules()`` order: path, class, own and inclusive params."""
    own = {
        path: sum(int(p.numel()) for p in module.parameters(recurse=False)) for path, module in model.named_modules()
    }
    inclusive: dict[str, int] = {}

    def total(path: str, module: nn.Module) -> int:
        count = own[path] + sum(
            total(f"{path}.{name}" if path else name, child) for name, child in module.named_children()
        )
        inclusive[path] = count
        return count

    total("", model)
    return [
        {"path": path, "class_name": type(module).__name__, "own_params": own[path], "params": inclusive[path]}
        for path, module in model.named_modules()
    ]


@click.command(name="tree")
@click.option(
    "--model",
    "model_name",
    default=_DEFAULT_MODEL,
    show_default=True,
    help="Model source (deepseek-ocr-v1-base, deepseek-ocr-v1-tiny, hf-snapshot:PATH, hf:REPO@REVISION, "
    "deepseek-ocr-2).",
)
@click.option("--trust-remote-code", is_flag=True, default=False, help="Allow running a model source's remote code.")
@click.option("--flat", is_flag=True, help="One record per module (every named_modules() path), no grouping.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "text"]),
    default=None,
    help="--flat: json (one JSON object per line, the default) or text (aligned lines). Grouped: text (default) or "
    "json (node records).",
)
@click.option("--workload", "workload_id", default=None, help="Grouped view: workload preset to trace.")
@click.option("--mode", default=None, help="Grouped view: resolution mode override.")
@click.option("--image", "page", default=None, metavar="WxH", help="Grouped view: page size override, e.g. 1024x1024.")
@click.option("--max-new-tokens", type=int, default=None, help="Grouped view: generated tokens override.")
@click.option(
    "--attention",
    type=click.Choice(["flash", "eager"]),
    default=None,
    help="Grouped view: attention kernel [default: flash; eager for hf-snapshot:/hf: sources].",
)
@click.option("--stage", default=None, help="Grouped view: show one stage (vision, projector, prefill, decode).")
@click.option("--depth", type=click.IntRange(min=0), default=None, help="Grouped view: levels below the start.")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def tree(
    model_name: str,
    trust_remote_code: bool,
    flat: bool,
    fmt: str | None,
    workload_id: str | None,
    mode: str | None,
    page: str | None,
    max_new_tokens: int | None,
    attention: str | None,
    stage: str | None,
    depth: int | None,
    quiet: bool,
) -> None:
    """Print the module tree of a model source, built on the meta device.

    Default: the grouped tree a trace produces (repeated blocks folded, per-stage nodes, for/parfor counts,
    parameters and constructor parameters). --flat: every named_modules() path, no trace.
    """
    # lazy: torch loads only when the command runs (--help imports every command module)
    from llm_perf_opt.analysis.model_source import trusted_source

    kernel = attention or default_attention(model_name)
    if not flat:
        source = trusted_source(model_name, trust_remote_code)
        _grouped(source, fmt or "text", workload_id, mode, page, max_new_tokens, kernel, stage, depth, quiet=quiet)
        return
    source = trusted_source(model_name, trust_remote_code)
    model = source.build(attn_implementation="sdpa" if kernel == "flash" else "eager")
    records = module_records(model)
    if fmt == "text":
        click.echo(flat_text(records))
        return
    for record in records:
        click.echo(json.dumps(record))


def flat_text(records: list[dict[str, Any]]) -> str:
    """One aligned line per module: path (``<root>`` for the root), class, inclusive and own parameter counts."""
    rows = [(r["path"] or "<root>", r["class_name"], f"{r['params']:,}", f"{r['own_params']:,}") for r in records]
    header = ("path", "class", "params", "own params")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    w0, w1, w2, w3 = widths
    lines = (f"{a:<{w0}}  {b:<{w1}}  {c:>{w2}}  {d:>{w3}}" for a, b, c, d in [header, *rows])
    return "\n".join(line.rstrip() for line in lines)


def _grouped(
    source: Any,
    fmt: str,
    workload_id: str | None,
    mode: str | None,
    page: str | None,
    max_new_tokens: int | None,
    attention: str,
    stage: str | None,
    depth: int | None,
    *,
    quiet: bool,
) -> None:
    """Trace the workload on the meta device and print the grouped tree (text) or its node records (json)."""
    # lazy: torch loads only when the command runs (--help imports every command module)
    from llm_perf_opt.analysis.model_source import check_source_attention, resolve_source_workload
    from llm_perf_opt.tracer.trace import trace_workload

    options = AnalysisOptions(
        model=source.name,
        mode=mode,
        page=_parse_page(page) if page else None,
        max_new_tokens=max_new_tokens,
        workload_id=workload_id or DEFAULT_PRESET_ID,
    )
    check_source_attention(source, attention)
    workload = resolve_source_workload(options, source)
    with StepProgress(quiet=quiet) as progress:  # on a terminal only, as the other commands' progress
        progress(f"tracing {source.name}: {workload.describe()}")
        trace = trace_workload(source, workload, attention="eager" if attention == "eager" else "flash")
    if fmt == "json":
        click.echo(json.dumps(tree_records(trace), indent=1))
    else:
        click.echo(tree_text(trace, stage=stage, max_depth=depth), nl=False)


def _parse_page(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.strip().isdigit() or not height.strip().isdigit():
        raise UserError(f"--image must be WIDTHxHEIGHT in pixels (e.g. 1024x1024), got {text!r}")
    return int(width), int(height)
