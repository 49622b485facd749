"""``deepseek-ocr-2``: DeepSeek-OCR-2 through transformers' own ``deepseek_ocr2`` model, as a model source.

``config`` holds the decoder values as a :class:`DeepseekOCRConfig` (OCR-2's decoder is v1's: same keys and values
in ``language_config``); the vision side lives in the transformers config the tree is built from.  Workloads are
:class:`~.modes.Ocr2Workload`; a v1 ``Workload`` maps onto one by page, prompt length, generated tokens and batch
(resolution mode ``dynamic``).  Its driver and stage anchors are what the tracer runs it with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from attrs import field, frozen

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import UserError
from llm_perf_opt.sources.deepseek_ocr2.config import EXPERTS_IMPLEMENTATION, published_config, source_facts
from llm_perf_opt.sources.registry import ModelSource
from llm_perf_opt.sources.upstream.compat import installed_transformers
from llm_perf_opt.sources.upstream.records import AdapterRecord, UpstreamProvenance
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

if TYPE_CHECKING:  # building and driving need torch; resolving the source (a cached trace's report) does not
    import torch
    from torch import nn

    from llm_perf_opt.sources.deepseek_ocr_v1.moe import ExpertRouting

__all__ = ["OCR2_STAGE_ANCHORS", "Ocr2ModelSource", "deepseek_ocr2_source", "to_ocr2_workload"]

NAME = "deepseek-ocr-2"
OCR2_STAGE_ANCHORS = {
    "vision": ("model.vision_tower",),
    "projector": ("model.multi_modal_projector",),
    "language": (
        "model.language_model.embed_tokens",
        "model.language_model.layers",
        "model.language_model.norm",
        "lm_head",
    ),
}
"""``StageRules`` prefixes for the transformers tree (vision tower, projector, language model)."""


def to_ocr2_workload(workload: Any) -> Ocr2Workload:
    """An :class:`Ocr2Workload` as is; anything with ``page``, ``prompt_tokens``, ``max_new_tokens``,
    ``batch_size`` (a v1 ``Workload``) mapped onto the ``dynamic`` mode."""
    if isinstance(workload, Ocr2Workload):
        return workload
    try:
        page = tuple(workload.page)
        return Ocr2Workload.create(
            mode="dynamic",
            page=(int(page[0]), int(page[1])),
            prompt_tokens=int(workload.prompt_tokens),
            max_new_tokens=int(workload.max_new_tokens),
            batch_size=int(workload.batch_size),
        )
    except AttributeError:
        raise UserError(
            f"cannot map {type(workload).__name__} to a DeepSeek-OCR-2 workload; expected an Ocr2Workload or a "
            "workload with page, prompt_tokens, max_new_tokens and batch_size"
        ) from None


@frozen(kw_only=True)
class Ocr2ModelSource(ModelSource):
    """DeepSeek-OCR-2 as a model source (see the module docstring)."""

    kind: ClassVar[str] = "deepseek-ocr-2"
    rows_in_one_call: ClassVar[bool] = True
    """transformers' model encodes every page of a batch in one call (see ``TraceableSource``)."""

    stage_anchors: dict[str, tuple[str, ...]] = field(factory=lambda: dict(OCR2_STAGE_ANCHORS))

    def build(
        self,
        *,
        device: torch.device | str = "meta",
        dtype: torch.dtype | None = None,
        attn_implementation: str = "sdpa",
    ) -> nn.Module:
        # lazy: torch and transformers' model (seconds); a cached trace's report resolves the source without them
        import torch

        # lazy: as above
        from llm_perf_opt.sources.deepseek_ocr2.build import build_ocr2_model

        if torch.device(device).type != "meta":
            raise UserError(f"model source {NAME} is built on the meta device only; got device {device!r}")
        return build_ocr2_model(dtype=dtype or torch.bfloat16, attn_implementation=attn_implementation)

    def make_inputs(
        self, workload: Any, *, device: torch.device | str = "meta", dtype: torch.dtype | None = None
    ) -> Any:
        raise UserError(
            f"model source {NAME} is driven by its own driver (transformers' calling convention), not the built-in "
            "input builder; trace it with llm_perf_opt.tracer.trace.trace_workload, which runs its driver"
        )

    def make_driver(self, model: nn.Module, workload: Any, routing: ExpertRouting) -> Any:
        # lazy: torch (see build)
        from llm_perf_opt.sources.deepseek_ocr2.driver import Ocr2Driver

        return Ocr2Driver(model, to_ocr2_workload(workload), routing)

    def moe_layers(self, model: nn.Module) -> tuple[tuple[str, int, int, int, bool], ...]:
        """(path, routing layer index, routed experts, experts per token, fused) of every MoE layer of ``model``, in
        module order: what a batch basis reads (the experts of a layer are one fused module, no module list, which
        calls them in ascending slice size: :mod:`.experts`)."""
        # lazy: torch (see build)
        from llm_perf_opt.sources.deepseek_ocr2.build import experts_layers

        layer_of = experts_layers(model)
        found = []
        for path, module in model.named_modules():
            experts, gate = getattr(module, "experts", None), getattr(module, "gate", None)
            if experts is not None and gate is not None and id(experts) in layer_of:
                found.append((path, layer_of[id(experts)], int(experts.num_experts), int(gate.top_k), True))
        return tuple(found)

    def provenance(self, driver: Any = None) -> UpstreamProvenance:
        """The published config's hash and source, the transformers version, and the workarounds with their uses."""
        facts = source_facts()
        records: tuple[AdapterRecord, ...] = (
            AdapterRecord(
                kind="counting-experts",
                target="transformers.models.deepseek_ocr2.modeling_deepseek_ocr2.DeepseekOcr2TextExperts.forward",
                description=f"experts implementation {EXPERTS_IMPLEMENTATION!r}: sorted dispatch, per-expert slice "
                "sizes from the routing model",
                reviewed_as="transformers ExpertsInterface",
                uses=driver.expert_calls[0] if driver is not None else 0,
            ),
            AdapterRecord(
                kind="placeholder-check-from-workload",
                target="transformers.models.deepseek_ocr2.modeling_deepseek_ocr2.torch_compilable_check",
                description="the image-token count check (a host read on meta) is skipped; inputs are built with the "
                "workload's N_img tokens",
                reviewed_as="meta tensors only",
                uses=driver.checks.skipped if driver is not None else 0,
            ),
            AdapterRecord(
                kind="kv-cache-preallocated",
                target="transformers.cache_utils.DynamicLayer.update",
                description="cache layers write into a preallocated buffer (append writes the new positions only)",
                reviewed_as="transformers Cache layers",
                uses=driver.kv_appends[0] if driver is not None else 0,
            ),
        )
        return UpstreamProvenance(
            source=NAME,
            hf_repo=str(facts["model"]),
            config_sha256=str(facts["config_json"]["sha256"]),
            transformers_version=installed_transformers(),
            adapters=records,
        )


def deepseek_ocr2_source() -> Ocr2ModelSource:
    """The ``deepseek-ocr-2`` model source (decoder config from the published ``language_config``)."""
    decoder = DeepseekOCRConfig.from_hf_config(published_config()["language_config"], variant=NAME)
    return Ocr2ModelSource(
        name=NAME,
        config=decoder,
        description="DeepSeek-OCR-2 via transformers' deepseek_ocr2 model (transformers >= 5.10.1), published config",
    )
