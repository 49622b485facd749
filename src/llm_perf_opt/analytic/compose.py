"""``analytic_costs``: the whole workload as a tree of closed forms keyed by the tracer's module ids (both families;
this module composes DeepSeek-OCR v1, :mod:`llm_perf_opt.analytic._ocr2` DeepSeek-OCR-2).

Stages (docs/architecture.md): ``vision`` (SAM and CLIP on the crop batch and on the global view of every page,
plus the feature concat), ``projector`` (projector, newline/separator tokens, injection; also the eager causal
mask, built after the last stage anchor entered - the projector), ``prefill`` (one pass over ``S`` tokens per
row) and ``decode`` (``N - 1`` one-token steps, summed in closed form).  Every node is inclusive and a total over
all calls, group members and decode steps, exactly like :class:`llm_perf_opt.tracer.result.TracedNode`.
"""

from __future__ import annotations

from functools import lru_cache

from llm_perf_opt.analytic._language import V1_DECODER, add_language_stages, decoder_params
from llm_perf_opt.analytic._ocr2 import Ocr2WorkloadLike, ocr2_tree
from llm_perf_opt.analytic._parts import index_label
from llm_perf_opt.analytic._sam import V1_SAM, add_sam_weights, sam_params
from llm_perf_opt.analytic._vision import CLIP, EncoderCall, add_projector_stage, add_vision_stage
from llm_perf_opt.analytic.formulas import decoder as dec
from llm_perf_opt.analytic.formulas import stage_peaks as sp
from llm_perf_opt.analytic.tree import AnalyticTree, Recorder, Recording, TreeBuilder
from llm_perf_opt.config import DeepseekOCR2Config, DeepseekOCRConfig
from llm_perf_opt.errors import UserError
from llm_perf_opt.workloads import RoutingModel, Workload

__all__ = ["ATTENTION_KINDS", "analytic_costs", "model_params", "model_weight_bytes"]

ATTENTION_KINDS = ("flash", "eager")
_BALANCED = RoutingModel.balanced()


def analytic_costs(
    config: DeepseekOCRConfig | DeepseekOCR2Config,
    workload: Workload | Ocr2WorkloadLike,
    *,
    attention: str = "flash",
    routing: RoutingModel | None = None,
    act_bytes: int = 2,
) -> AnalyticTree:
    """Closed-form costs of ``workload`` on ``config``, node by node, for either family: DeepSeek-OCR v1 (a
    :class:`~llm_perf_opt.workloads.Workload`; see the module docstring) or DeepSeek-OCR-2 (a
    :class:`~llm_perf_opt.config.DeepseekOCR2Config` and its workload; :mod:`llm_perf_opt.analytic._ocr2`).

    ``attention``: ``flash`` = fused SDPA everywhere (causal-effective executed FLOPs in the decoder prefill; OCR-2's
    SAM and encoder masks are explicit); ``eager`` = explicit decoder attention with an additive mask and fp32
    softmax, and SAM/CLIP SDPA as torch's math decomposition.  ``routing``: the MoE routing model (balanced by
    default).  ``act_bytes``: bytes per element of activations and weights (2 for bf16/fp16; the fp32 casts in the
    model are modelled as for a 16-bit dtype).  Results are cached per argument set (all arguments are immutable).
    """
    if attention not in ATTENTION_KINDS:
        raise UserError(f"unknown attention kernel {attention!r}; expected one of: {', '.join(ATTENTION_KINDS)}")
    eager, routing = attention == "eager", routing or _BALANCED
    if isinstance(config, DeepseekOCR2Config):
        if isinstance(workload, Workload):
            raise UserError("a DeepSeek-OCR-2 model needs a DeepSeek-OCR-2 workload (mode dynamic or single)")
        return ocr2_tree(config, workload, eager, routing, act_bytes)
    if not isinstance(workload, Workload):
        raise UserError("a DeepSeek-OCR v1 model needs a v1 workload (modes tiny ... gundam-m)")
    return _v1_tree(config, workload, eager, routing, act_bytes)


@lru_cache(maxsize=256)
def _v1_tree(config: DeepseekOCRConfig, workload: Workload, eager: bool, routing: RoutingModel, a: int) -> AnalyticTree:
    B, S, N = workload.batch_size, workload.seq_len, workload.max_new_tokens
    tb = TreeBuilder()
    tb.node("root", calls=N)
    # a text-only request runs no encoder: the eager mask is built in ``model`` after the language anchors entered
    mask_node = "prefill/model" if workload.text_only else "projector/model"
    if not workload.text_only:
        for nid in ("vision", "vision/model", "projector", "projector/model"):
            tb.node(nid, calls=1)  # the one prefill call of the root and of ``model``
        crops: tuple[tuple[int, int], ...] = ((workload.num_crops, workload.crop_size),) if workload.num_crops else ()
        views = (*crops, (1, workload.global_view_size))
        tb.replay(_page_records(config, views, workload.grid, S, eager, a), B)
        _vision_weights(tb, config, a=a)
    if eager:
        tb.add(mask_node, "data_movement", dec.causal_mask_fills(q=S, a=a))
        tb.add(mask_node, "elementwise", dec.causal_mask_compare(q=S))
    own = 2 * config.projector.n_embed * a  # image_newline, view_seperator
    add_language_stages(tb, config, V1_DECODER, B=B, S=S, N=N, routing=routing, eager=eager, own_weights=own, a=a)
    _set_stage_peaks(tb, config, workload, eager=eager, a=a)
    return tb.build(root_weight_bytes=model_weight_bytes(config, a=a))


def _set_stage_peaks(tb: TreeBuilder, cfg: DeepseekOCRConfig, w: Workload, *, eager: bool, a: int) -> None:
    """Stage and root peaks: the traced live set at each stage's highest point (``formulas.stage_peaks``), not the
    largest leaf working set (leaf nodes keep theirs; ``divergences``)."""
    B, S, D, H, V = w.batch_size, w.seq_len, cfg.hidden_size, cfg.num_attention_heads, cfg.vocab_size
    h_d = D // H
    images = not w.text_only
    n_c, c, G = (w.num_crops, w.crop_size, w.global_view_size) if images else (0, 0, 0)
    inputs = sp.pass_inputs(B=B, S=S, n_c=n_c, c=c, G=G, a=a)
    peaks = {"prefill": sp.prefill_peak(inputs=inputs, B=B, S=S, D=D, H=H, h_d=h_d, V=V, eager=eager, a=a)}
    if w.max_new_tokens > 1:
        peaks["decode"] = sp.decode_peak(B=B, K=w.final_kv_len, D=D, H=H, h_d=h_d, V=V, eager=eager, a=a)
    if images:
        s = cfg.sam
        views = {"B": B, "S": S, "D": D, "n_e": cfg.projector.n_embed, "N_img": w.image_tokens, "n_c": n_c, "c": c}
        views |= {"G": G, "t_c": w.crop_grid_side}
        peaks["vision"] = sp.vision_peak(**views, p=s.patch_size, E=s.embed_dim, H_s=s.num_heads, eager=eager, a=a)
        peaks["projector"] = sp.projector_peak(
            **views,
            i=w.grid[0],
            t_g=w.global_grid_side,
            C_s=s.downsample_channels[-1],
            D_c=cfg.clip.hidden_size,
            eager=eager,
            a=a,
        )
    tb.peaks.update(peaks)
    tb.peaks["root"] = max(peaks.values())


@lru_cache(maxsize=512)
def _page_records(
    config: DeepseekOCRConfig, views: tuple[tuple[int, int], ...], grid: tuple[int, int], S: int, eager: bool, a: int
) -> Recording:
    """Vision and projector work of one page (batch row): ``views`` = ``(B, R)`` per encoder call."""
    rec = Recorder()
    calls = [EncoderCall(B=b, R=r, times=1) for b, r in views]
    add_vision_stage(rec, config, calls, eager=eager, a=a)
    add_projector_stage(rec, config, calls, grid=grid, S=S, a=a)
    return rec.frozen()


def _vision_weights(tb: TreeBuilder, cfg: DeepseekOCRConfig, *, a: int) -> None:
    """Parameter bytes of every vision/projector module that runs (not CLIP's unused patch conv)."""
    s, c, p = cfg.sam, cfg.clip, cfg.projector
    own_model = 2 * p.n_embed * a  # image_newline, view_seperator
    for stage in ("vision", "projector"):
        tb.add_weights(f"{stage}/model", own_model)
    add_sam_weights(tb, s, V1_SAM, a=a)
    Dc, F = c.hidden_size, c.ffn_hidden_size
    tb.add_weights(f"{CLIP}.embeddings", Dc * a)
    tb.add_weights(f"{CLIP}.embeddings.position_embedding", c.num_positions * Dc * a)
    tb.add_weights(f"{CLIP}.pre_layrnorm", 2 * Dc * a)
    nid, L = f"{CLIP}.transformer.layers.{index_label(list(range(c.num_layers)))}", c.num_layers
    for name, n_params in (
        ("layer_norm1", 2 * Dc),
        ("layer_norm2", 2 * Dc),
        ("self_attn.qkv_proj", Dc * 3 * Dc + 3 * Dc),
        ("self_attn.out_proj", Dc * Dc + Dc),
        ("mlp.fc1", Dc * F + F),
        ("mlp.fc2", F * Dc + Dc),
    ):
        tb.add_weights(f"{nid}.{name}", L * n_params * a)
    tb.add_weights("projector/model.projector.layers", (p.input_dim * p.n_embed + p.n_embed) * a)


def model_weight_bytes(config: DeepseekOCRConfig, *, a: int = 2) -> int:
    """Every parameter of the model in bytes (model-facts §2: 3,336,106,240 params -> 6,672,212,480 B in bf16)."""
    return model_params(config) * a


def model_params(cfg: DeepseekOCRConfig) -> int:
    """Parameter count of the whole tree, module by module (model-facts §2.0 table)."""
    c, p = cfg.clip, cfg.projector
    Dc, F = c.hidden_size, c.ffn_hidden_size
    clip = Dc + 3 * Dc * c.patch_size**2 + c.num_positions * Dc + 2 * Dc
    clip += c.num_layers * (4 * Dc + Dc * 3 * Dc + 3 * Dc + Dc * Dc + Dc + Dc * F + F + F * Dc + Dc)
    proj = p.input_dim * p.n_embed + p.n_embed + 2 * p.n_embed
    return sam_params(cfg.sam) + clip + proj + decoder_params(cfg)
