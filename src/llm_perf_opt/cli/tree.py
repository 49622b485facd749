"""``llm-perf-opt tree``: the model's module tree, built on the meta device (no weights).

``--flat --format json`` prints one JSON object per module, in ``named_modules()`` order (the root first, path ``""``):
``{"path": ..., "class_name": ..., "own_params": ..., "params": ...}`` - parameters registered directly on the module
and the inclusive count.  The grouped view (repeated blocks folded, per-stage nodes) comes from the tracer and is
not available yet; asking for it is an error rather than a stand-in.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from llm_perf_opt.errors import UserError

if TYPE_CHECKING:
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
    help="Model source name (e.g. deepseek-ocr-v1-base, deepseek-ocr-v1-tiny).",
)
@click.option("--flat", is_flag=True, help="One record per module (every named_modules() path), no grouping.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json"]),
    default="json",
    show_default=True,
    help="json: one JSON object per line.",
)
def tree(model_name: str, flat: bool, fmt: str) -> None:
    """Print the module tree of a model source, built on the meta device."""
    if not flat:
        raise UserError(
            "the grouped tree view needs the tracer, which this build does not have yet; "
            "use --flat for the per-module listing"
        )
    from llm_perf_opt.sources import resolve_model_source

    model = resolve_model_source(model_name).build()
    for record in module_records(model):
        click.echo(json.dumps(record))
