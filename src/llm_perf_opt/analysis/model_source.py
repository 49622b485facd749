"""What the analysis needs to know about a model source beyond ``build`` and ``config``.

Three kinds: the built-in clean-room v1 model (``deepseek-ocr-v1-base``, ``-tiny``), upstream v1 remote code
(``hf-snapshot:PATH``, ``hf:REPO@REV``: the same tree, so v1's analytic formulas apply; eager attention only) and
DeepSeek-OCR-2 (``deepseek-ocr-2``: its own workloads, tree and analytic model).  Per kind: the trust gate, the
attention kernels it supports, the workload the options resolve to, the analytic model, the model spec and the
provenance lines a report carries (code hashes, Hub revision, meta adapters and their use counts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from attrs import evolve

from llm_perf_opt.analysis.options import AnalysisOptions, resolve_workload
from llm_perf_opt.analytic import analytic_costs
from llm_perf_opt.analytic.ocr2 import ocr2_analytic_costs
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.config.deepseek_ocr2 import DeepseekOCR2Config
from llm_perf_opt.contracts import DeepSeekOCRModelSpec
from llm_perf_opt.errors import UserError
from llm_perf_opt.sources.deepseek_ocr2.config import analytic_config
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.workloads import RoutingModel, Workload, get_preset
from llm_perf_opt.workloads.ocr2 import OCR2_MODES, Ocr2Workload

__all__ = [
    "SourceKind",
    "analytic_for",
    "check_source_attention",
    "model_spec",
    "provenance_lines",
    "resolve_source_workload",
    "source_kind",
    "source_provenance",
    "trusted_source",
]

SourceKind = Literal["builtin-v1", "upstream-v1", "deepseek-ocr-2"]


def source_kind(source: Any) -> SourceKind:
    """Which kind of model source ``source`` is (see the module docstring): its class's ``kind``."""
    kind: SourceKind = getattr(source, "kind", "builtin-v1")
    return kind


def trusted_source(name: str, trust_remote_code: bool) -> Any:
    """Resolve ``name`` and apply the ``--trust-remote-code`` decision: a remote-code source without it is a
    one-line TrustError listing the files that would run with their sha256."""
    source = resolve_model_source(name)
    if source_kind(source) != "upstream-v1":
        return source  # no remote code to trust; and no torch import (the upstream sources' module needs it)
    # lazy: the upstream sources' module imports torch, which an analysis served from the trace cache never needs
    from llm_perf_opt.sources.upstream.source import grant_trust

    return grant_trust(source, trust_remote_code)


def check_source_attention(source: Any, attention: str) -> None:
    """Upstream v1 remote code runs eager attention only (its flash path needs flash_attn and CUDA)."""
    if attention != "eager" and source_kind(source) == "upstream-v1":
        raise UserError(
            f"model source {source.name} runs upstream DeepSeek-OCR v1 remote code, which implements attention as "
            f"eager only on the meta device (not {attention}); rerun with --attention eager"
        )


def resolve_source_workload(options: AnalysisOptions, source: Any) -> Workload | Ocr2Workload:
    """The workload the options ask for, in the source's terms.

    v1 sources: the preset plus overrides (:func:`resolve_workload`).  DeepSeek-OCR-2: the preset's page, prompt
    length, generated tokens and batch (and the overrides) in OCR-2's ``dynamic`` mode, or the ``--mode`` given
    (``dynamic`` or ``single``); the preset id is kept when nothing was overridden.
    """
    kind = source_kind(source)
    if options.text_only and kind != "builtin-v1":
        raise UserError(
            f"--text-only is traced only for the built-in DeepSeek-OCR v1 sources, not {source.name}; "
            "drop --text-only or use --model deepseek-ocr-v1-base"
        )
    if kind != "deepseek-ocr-2":
        workload = resolve_workload(options, source.config)
        return evolve(workload, text_only=True) if options.text_only else workload
    base = Workload.from_profile(get_preset(options.workload_id))
    mode = options.mode or "dynamic"
    if mode not in OCR2_MODES:
        raise UserError(
            f"model source {source.name} has resolution modes {', '.join(OCR2_MODES)}, not {mode!r}; "
            "pass --mode dynamic or --mode single (or leave --mode out)"
        )
    overridden = any(
        v is not None
        for v in (options.mode, options.page, options.prompt_tokens, options.max_new_tokens, options.batch_size)
    )
    return Ocr2Workload.create(
        mode=mode,
        page=options.page if options.page is not None else base.page,
        prompt_tokens=options.prompt_tokens if options.prompt_tokens is not None else base.prompt_tokens,
        max_new_tokens=options.max_new_tokens if options.max_new_tokens is not None else base.max_new_tokens,
        batch_size=options.batch_size if options.batch_size is not None else base.batch_size,
        profile_id=None if overridden else base.profile_id,
    )


def analytic_for(
    source: Any, workload: Workload | Ocr2Workload, *, attention: str, routing: RoutingModel, act_bytes: int = 2
) -> Any:
    """The analytic tree for the source's kind: v1's formulas for built-in and upstream v1 sources (same tree),
    DeepSeek-OCR-2's (its SAM, Qwen2 encoder, projector and v1 decoder, keyed like its trace) for ``deepseek-ocr-2``.
    """
    if isinstance(workload, Ocr2Workload):
        return ocr2_analytic_costs(
            analytic_config(), workload, attention=attention, routing=routing, act_bytes=act_bytes
        )
    return analytic_costs(source.config, workload, attention=attention, routing=routing, act_bytes=act_bytes)


def runtime_config(source: Any, workload: Workload | Ocr2Workload) -> DeepseekOCRConfig | DeepseekOCR2Config:
    """The torch-free config the runtime kernel models read: DeepSeek-OCR-2's analytic config for its workloads,
    else the source's v1 config."""
    return analytic_config() if isinstance(workload, Ocr2Workload) else source.config


def model_spec(source: Any, provenance: Mapping[str, Any] | None) -> DeepSeekOCRModelSpec:
    """The ``model.json`` model spec; for remote-code sources the Hub revision, the config's location and the
    code hashes and adapters (in ``notes``)."""
    config: DeepseekOCRConfig = source.config
    kind = source_kind(source)
    if kind == "builtin-v1":
        return _spec(
            config,
            model_id="deepseek-ai/DeepSeek-OCR",
            model_variant=config.variant if source.name.startswith("deepseek-ocr-v1") else source.name,
            hf_revision=None,
            config_path=None,
            notes="vision: SAM ViT-B feeding CLIP-L (two encoders); decoder: DeepSeek-V2 MoE with MHA",
        )
    prov = provenance or {}
    config_path: str | None
    if kind == "deepseek-ocr-2":
        vision = "vision: SAM ViT-B (896-wide last conv) feeding a 24-layer Qwen2 encoder with learnable queries"
        model_id, config_path = "deepseek-ai/DeepSeek-OCR-2", "llm_perf_opt/sources/deepseek_ocr2/data/config.json"
    else:
        vision = "vision: SAM ViT-B feeding CLIP-L (two encoders)"
        model_id = str(prov.get("hf_repo") or "deepseek-ai/DeepSeek-OCR")
        config_path = _config_location(source)
    return _spec(
        config,
        model_id=model_id,
        model_variant=source.name,
        hf_revision=prov.get("hf_revision"),
        config_path=config_path,
        notes=f"{vision}; decoder: DeepSeek-V2 MoE with MHA; " + "; ".join(provenance_lines(prov)),
    )


def _spec(
    config: DeepseekOCRConfig,
    *,
    model_id: str,
    model_variant: str,
    hf_revision: str | None,
    config_path: str | None,
    notes: str,
) -> DeepSeekOCRModelSpec:
    """The model spec: identity and provenance as given, sizes from ``config``."""
    return DeepSeekOCRModelSpec(
        model_id=model_id,
        model_variant=model_variant,
        hf_revision=hf_revision,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        vision_backbone="sam_vit_b",
        uses_moe=config.n_routed_experts > 0,
        config_path=config_path,
        notes=notes,
    )


def source_provenance(source: Any, driver: Any) -> dict[str, Any] | None:
    """What a remote-code source reports about the code that was traced (``source.provenance(driver)``: hashes, Hub
    revision, adapters with their uses), as a dict; None for sources without provenance (the built-in model)."""
    provenance_of = getattr(source, "provenance", None)
    return dict(provenance_of(driver).as_dict()) if callable(provenance_of) else None


def _config_location(source: Any) -> str | None:
    snapshot = getattr(source, "snapshot", None)
    if snapshot is None:
        return None
    if snapshot.hf_repo:
        return f"hf:{snapshot.hf_repo}@{snapshot.hf_revision}/config.json"
    return str(snapshot.root / "config.json")


def provenance_lines(provenance: Mapping[str, Any]) -> list[str]:
    """One line each: the code that was traced (config and file sha256, Hub revision, transformers, stubs) and the
    meta adapters with their use counts.  Empty for the built-in model."""
    if not provenance:
        return []
    where = provenance.get("source", "?")
    if provenance.get("hf_repo") and provenance.get("hf_revision"):
        where += f" ({provenance['hf_repo']} at commit {provenance['hf_revision']})"
    code = provenance.get("code_hashes") or {}
    files = ", ".join(f"{name} sha256={digest}" for name, digest in sorted(code.items()))
    lines = [
        f"model source: {where}; config.json sha256={provenance.get('config_sha256', '')}"
        + (f"; remote code traced: {files}" if files else ""),
        f"remote code environment: transformers {provenance.get('transformers_version') or 'not installed'}"
        + (
            f"; host-only packages stubbed: {', '.join(provenance['stubbed_packages'])}"
            if provenance.get("stubbed_packages")
            else ""
        ),
    ]
    adapters = provenance.get("adapters") or ()
    if adapters:
        lines.append(
            "meta adapters: " + ", ".join(f"{a['kind']} on {a['target']} (used {a['uses']}x)" for a in adapters)
        )
    return lines
