"""DeepSeek-OCR-2 (transformers' ``deepseek_ocr2``) as closed forms keyed by its trace's ids (``analytic_costs`` with
a :class:`~llm_perf_opt.config.DeepseekOCR2Config`).

Stages as the trace has them: ``vision`` (the vision tower on the global views, then on the tiles: SAM ViT-B, the
query concat, the Qwen2 encoder), ``projector`` (``multi_modal_projector`` per call, view features, injection,
eager prefill mask), ``prefill`` (one pass over ``S`` tokens) and ``decode`` (``N - 1`` one-token passes in closed
form).  v1's formulas cover SAM's blocks and the decoder; :mod:`.formulas.qwen2_vision` the encoder and
:mod:`.formulas.ocr2` what transformers does differently.  Known differences from the trace:
:data:`llm_perf_opt.analytic.divergences.OCR2_DIVERGENCES`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

from llm_perf_opt.analytic._language import OCR2_DECODER, add_language_stages, decoder_params
from llm_perf_opt.analytic._ocr2_vision import ENC, ViewCall, add_ocr2_projector_stage, add_ocr2_vision_stage
from llm_perf_opt.analytic._parts import index_label
from llm_perf_opt.analytic._sam import OCR2_SAM, add_sam_weights, sam_params
from llm_perf_opt.analytic.tree import AnalyticTree, TreeBuilder
from llm_perf_opt.config import DeepseekOCR2Config
from llm_perf_opt.workloads import RoutingModel

__all__ = ["Ocr2WorkloadLike", "ocr2_model_params", "ocr2_tree"]


class Ocr2WorkloadLike(Protocol):
    """What is read from a :class:`llm_perf_opt.workloads.ocr2.Ocr2Workload` (hashable, for the cache)."""

    @property
    def batch_size(self) -> int: ...
    @property
    def seq_len(self) -> int: ...
    @property
    def max_new_tokens(self) -> int: ...
    @property
    def image_tokens(self) -> int: ...
    @property
    def global_view_size(self) -> int: ...
    @property
    def num_crops(self) -> int: ...
    @property
    def crop_size(self) -> int: ...
    def __hash__(self) -> int: ...


@lru_cache(maxsize=64)
def ocr2_tree(
    cfg: DeepseekOCR2Config, work: Ocr2WorkloadLike, eager: bool, routing: RoutingModel, a: int
) -> AnalyticTree:
    """The tree of ``work`` on ``cfg`` (``eager`` or flash attention; ``a`` bytes per element), cached."""
    B, S, N = work.batch_size, work.seq_len, work.max_new_tokens
    tb = TreeBuilder()
    tb.node("root", calls=N)
    for nid in ("vision", "vision/model", "projector", "projector/model"):
        tb.node(nid, calls=1)
    calls = [ViewCall(B=B, R=work.global_view_size)]
    if work.num_crops:
        calls.append(ViewCall(B=B * work.num_crops, R=work.crop_size))
    add_ocr2_vision_stage(tb, cfg, calls, eager=eager, a=a)
    add_ocr2_projector_stage(tb, cfg, calls, B=B, S=S, N_img=work.image_tokens, eager=eager, a=a)
    _vision_weights(tb, cfg, a=a)
    own = cfg.projector_out * a  # view_separator
    add_language_stages(
        tb, cfg.decoder, OCR2_DECODER, B=B, S=S, N=N, routing=routing, eager=eager, own_weights=own, a=a
    )
    return tb.build(root_weight_bytes=ocr2_model_params(cfg) * a)


def _vision_weights(tb: TreeBuilder, cfg: DeepseekOCR2Config, *, a: int) -> None:
    """Parameter bytes of every vision/projector module that runs (the query banks are read by the tower's concat
    but belong to ``Embedding`` modules that are never called, so no node owns them)."""
    s, e = cfg.sam, cfg.encoder
    d = cfg.projector_out
    for stage in ("vision", "projector"):
        tb.add_weights(f"{stage}/model", d * a)  # view_separator
    add_sam_weights(tb, s, OCR2_SAM, a=a)
    Dq, c, Hkv, F, n = e.hidden_size, e.head_dim, e.num_key_value_heads, e.intermediate_size, e.num_hidden_layers
    nid = f"{ENC}.layers.{index_label(list(range(n)))}"
    for name, n_params in (
        ("input_layernorm", Dq),
        ("post_attention_layernorm", Dq),
        ("self_attn.q_proj", Dq * Dq + Dq),
        ("self_attn.k_proj", Dq * Hkv * c + Hkv * c),
        ("self_attn.v_proj", Dq * Hkv * c + Hkv * c),
        ("self_attn.o_proj", Dq * Dq),
        ("mlp.gate_proj", Dq * F),
        ("mlp.up_proj", Dq * F),
        ("mlp.down_proj", F * Dq),
    ):
        tb.add_weights(f"{nid}.{name}", n * n_params * a)
    tb.add_weights(f"{ENC}.norm", Dq * a)
    tb.add_weights("projector/model.multi_modal_projector", (cfg.projector_in * d + d) * a)


def ocr2_model_params(cfg: DeepseekOCR2Config) -> int:
    """Parameter count of the whole tree (3,389,119,360 with the published config)."""
    e, d = cfg.encoder, cfg.decoder.hidden_size
    Dq, c, Hkv, F = e.hidden_size, e.head_dim, e.num_key_value_heads, e.intermediate_size
    layer = 2 * Dq + (Dq * Dq + Dq) + 2 * (Dq * Hkv * c + Hkv * c) + Dq * Dq + 3 * Dq * F
    encoder = e.num_hidden_layers * layer + Dq + sum(q for _, q in cfg.query_tokens) * Dq
    projector = cfg.projector_in * d + d + d  # + view_separator
    return sam_params(cfg.sam) + encoder + projector + decoder_params(cfg.decoder)
