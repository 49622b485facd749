"""A runtime's view of one workload: the analytic cost tree of the model, classed and fused.

The analytic tree equals the trace node by node (docs/validation.md), so the runtimes read it: it is torch-free and
takes milliseconds.  :func:`fused_costs` returns every node as the runtime runs it (:mod:`.kernel_map`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from llm_perf_opt.analytic import AnalyticTree, analytic_costs, ocr2_analytic_costs
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.config.deepseek_ocr2 import DeepseekOCR2Config
from llm_perf_opt.errors import UserError
from llm_perf_opt.runtimes.catalog import Runtime
from llm_perf_opt.runtimes.classes import class_of
from llm_perf_opt.runtimes.kernel_map import FusedNode, RuntimeNode, fuse_tree, runtime_nodes
from llm_perf_opt.workloads import RoutingModel, Workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

__all__ = ["ModelConfig", "WorkloadLike", "analytic_tree", "check_supported", "family_of", "fused_costs", "nodes_of"]

ModelConfig = DeepseekOCRConfig | DeepseekOCR2Config
WorkloadLike = Workload | Ocr2Workload


def family_of(config: ModelConfig) -> str:
    """``v1`` or ``ocr2``."""
    return "ocr2" if isinstance(config, DeepseekOCR2Config) else "v1"


def decoder_config(config: ModelConfig) -> DeepseekOCRConfig:
    """The decoder's config (OCR-2 reuses v1's decoder)."""
    return config.decoder if isinstance(config, DeepseekOCR2Config) else config


def analytic_tree(
    config: ModelConfig, workload: WorkloadLike, *, attention: str = "flash", routing: RoutingModel | None = None
) -> AnalyticTree:
    """The analytic tree of ``workload`` on ``config`` (v1 or OCR-2)."""
    if isinstance(config, DeepseekOCR2Config):
        if not isinstance(workload, Ocr2Workload):
            raise UserError("a DeepSeek-OCR-2 model needs a DeepSeek-OCR-2 workload (mode dynamic or single)")
        return ocr2_analytic_costs(config, workload, attention=attention, routing=routing)
    if not isinstance(workload, Workload):
        raise UserError("a DeepSeek-OCR v1 model needs a v1 workload (modes tiny ... gundam-m)")
    return analytic_costs(config, workload, attention=attention, routing=routing)


def nodes_of(tree: AnalyticTree, config: ModelConfig) -> dict[str, RuntimeNode]:
    """Every node of ``tree`` with its class (from the id), calls, children and cost per category."""
    family = family_of(config)
    dense = decoder_config(config).first_k_dense_replace
    classes = {nid: class_of(nid, family=family, first_k_dense_replace=dense) for nid in tree}
    return runtime_nodes(tree.children, tree.categories(), tree.calls, classes)


def check_supported(runtime: Runtime, *, attention: str, source: str = "") -> None:
    """A runtime that cannot run ``attention`` (e.g. upstream v1 remote code runs eager only) is a one-line
    :class:`UserError`."""
    if attention not in runtime.attention:
        where = f" for source {source!r}" if source else ""
        raise UserError(
            f"runtime {runtime.runtime_id!r} runs {'/'.join(runtime.attention)} attention only, but the attention"
            f"{where} is {attention!r}; use --runtime hf-eager (or a source that runs flash attention)"
        )


@lru_cache(maxsize=64)
def _fused(runtime: Runtime, config: ModelConfig, workload: WorkloadLike, attention: str) -> dict[str, FusedNode]:
    tree = analytic_tree(config, workload, attention=attention)
    return fuse_tree(nodes_of(tree, config), runtime.rules)


def fused_costs(
    runtime: Runtime, config: ModelConfig, workload: WorkloadLike, *, attention: str = "flash"
) -> Mapping[str, FusedNode]:
    """Every node of ``workload`` as ``runtime`` runs it (cached)."""
    check_supported(runtime, attention=attention)
    return _fused(runtime, config, workload, attention)
