"""The tiny variant runs for real on CPU and on meta: same shapes, eager == SDPA, cache == full recompute, MoE exact."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import TraceError, WorkloadError
from llm_perf_opt.sources.deepseek_ocr_v1 import (
    DeepseekOCRForCausalLM,
    ImageInputs,
    WorkloadInputs,
    build_model,
    make_inputs,
)
from llm_perf_opt.sources.deepseek_ocr_v1.moe import DeepseekV2MoE
from llm_perf_opt.workloads import RoutingModel

TINY = DeepseekOCRConfig.tiny()
# a small crop geometry that still exercises every branch: 2x1 crops of 128 px (SAM grid 8: one padded window,
# pos/rel-pos tables interpolated), a 256 px global view (grid 16 -> 2x2 padded windows).
CROPS = {"grid": (2, 1), "num_crops": 2, "global_view_size": 256, "crop_size": 128}
NO_CROPS = {"grid": (1, 1), "num_crops": 0, "global_view_size": 512, "crop_size": 640}  # the "tiny" mode


def _inputs(geometry: dict[str, Any], device: str, dtype: torch.dtype = torch.float32) -> WorkloadInputs:
    return make_inputs(TINY, max_new_tokens=3, device=device, dtype=dtype, **geometry)


def _run(model: DeepseekOCRForCausalLM, inputs: WorkloadInputs, **kw: Any) -> list[torch.Tensor]:
    """Prefill then two decode steps; the logits of each call."""
    cache = inputs.new_cache()
    with torch.no_grad():
        logits = [model(**inputs.prefill.kwargs(), past_key_values=cache, **kw).logits]
        for step in (1, 2):
            logits.append(model(**inputs.decode_step(step).kwargs(), past_key_values=cache, **kw).logits)
    assert cache.seq_length() == inputs.cache_len
    return logits


def test_token_counts_of_the_test_geometries() -> None:
    assert _inputs(CROPS, "meta").seq_len == 1 + (4 * 5 + 1) + (2 * 1) * (2 * 2 + 1) + 9  # 41
    assert _inputs(NO_CROPS, "meta").seq_len == 1 + (8 * 9 + 1) + 9  # 83


@pytest.mark.parametrize("geometry", [CROPS, NO_CROPS], ids=["crops", "no-crops"])
def test_real_cpu_and_meta_forward_give_identical_shapes(
    tiny_cpu_pair: tuple[DeepseekOCRForCausalLM, DeepseekOCRForCausalLM], geometry: dict[str, Any]
) -> None:
    real = _run(tiny_cpu_pair[0], _inputs(geometry, "cpu"))
    meta = _run(build_model(TINY, dtype=torch.float32), _inputs(geometry, "meta"))
    assert [t.shape for t in real] == [t.shape for t in meta]
    assert [t.dtype for t in real] == [t.dtype for t in meta] == [torch.float32] * 3
    assert real[0].shape == (1, _inputs(geometry, "meta").seq_len, TINY.vocab_size)
    assert all(torch.isfinite(t).all() for t in real)


@pytest.mark.parametrize("geometry", [CROPS, NO_CROPS], ids=["crops", "no-crops"])
def test_eager_and_sdpa_agree_on_real_inputs(
    tiny_cpu_pair: tuple[DeepseekOCRForCausalLM, DeepseekOCRForCausalLM], geometry: dict[str, Any]
) -> None:
    eager, sdpa = tiny_cpu_pair
    inputs = _inputs(geometry, "cpu")
    for a, b in zip(_run(eager, inputs), _run(sdpa, inputs), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("which", [0, 1], ids=["eager", "sdpa"])
def test_cached_decode_step_equals_a_full_recompute(
    tiny_cpu_pair: tuple[DeepseekOCRForCausalLM, DeepseekOCRForCausalLM], which: int
) -> None:
    model = tiny_cpu_pair[which]
    inputs = _inputs(CROPS, "cpu")
    step_logits = _run(model, inputs)[1]  # decode step 1: token at position S
    pre = inputs.prefill
    token = inputs.decode_step(1).input_ids
    longer = pre.kwargs() | {
        "input_ids": torch.cat([pre.input_ids, token], dim=1),
        "images_seq_mask": torch.cat([pre.images_seq_mask, torch.zeros_like(token, dtype=torch.bool)], dim=1),
        "position_ids": torch.arange(inputs.seq_len + 1)[None, :],
    }
    with torch.no_grad():
        full = model(**longer).logits
    torch.testing.assert_close(step_logits[:, -1], full[:, -1], rtol=1e-4, atol=1e-5)


def test_view_order_is_local_grid_global_grid_separator(
    tiny_cpu_pair: tuple[DeepseekOCRForCausalLM, DeepseekOCRForCausalLM],
) -> None:
    ocr = tiny_cpu_pair[0].model
    inputs = _inputs(CROPS, "cpu")
    with torch.no_grad():
        feats = ocr.image_features(inputs.prefill.images[0], (2, 1))
    local_row, local_rows = 2 * 2 + 1, 1 * 2  # (nq cols + 1) per row, nq rows: nq = 2
    global_row, global_rows = 4 + 1, 4
    assert feats.shape == (local_row * local_rows + global_row * global_rows + 1, TINY.hidden_size)
    newline_at = [local_row * (r + 1) - 1 for r in range(local_rows)]
    newline_at += [local_row * local_rows + global_row * (r + 1) - 1 for r in range(global_rows)]
    for i in newline_at:
        torch.testing.assert_close(feats[i], ocr.image_newline)
    torch.testing.assert_close(feats[-1], ocr.view_seperator)
    assert not torch.equal(feats[0], ocr.image_newline)


def test_image_features_land_on_the_masked_positions(
    tiny_cpu_pair: tuple[DeepseekOCRForCausalLM, DeepseekOCRForCausalLM],
) -> None:
    model = tiny_cpu_pair[0]
    inputs = _inputs(CROPS, "cpu")
    seen: list[torch.Tensor] = []
    hook = model.model.layers[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    try:
        _run(model, inputs)
    finally:
        hook.remove()
    with torch.no_grad():
        feats = model.model.image_features(inputs.prefill.images[0], (2, 1))
        text = model.model.embed_tokens(inputs.prefill.input_ids)
    mask = inputs.prefill.images_seq_mask[0]
    torch.testing.assert_close(seen[0][0][mask], feats)
    torch.testing.assert_close(seen[0][0][~mask], text[0][~mask])


class _OpLog(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops.add(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def test_meta_forward_never_reads_tensor_data() -> None:
    model = build_model(TINY)
    inputs = _inputs(CROPS, "meta", torch.bfloat16)
    with _OpLog() as log:
        _run(model, inputs)
    assert not {"aten._local_scalar_dense", "aten.nonzero", "aten.item"} & log.ops
    # the data-dependent steps ran as tensor ops: injection, MoE sort/gather/scatter
    assert {"aten.masked_scatter_", "aten.sort", "aten.index", "aten.index_put_", "aten.scatter_"} <= log.ops


def test_vision_runs_only_with_images_and_more_than_one_token(
    tiny_cpu_pair: tuple[DeepseekOCRForCausalLM, DeepseekOCRForCausalLM],
) -> None:
    model = tiny_cpu_pair[0]
    inputs = _inputs(CROPS, "cpu")
    calls: list[int] = []
    hook = model.model.sam_model.register_forward_hook(lambda *_: calls.append(1))
    try:
        with torch.no_grad():
            cache = inputs.new_cache()
            model(**inputs.prefill.kwargs(), past_key_values=cache)
            assert len(calls) == 2  # crops batch, then the global view
            model(**inputs.decode_step(1).kwargs(), images=inputs.prefill.images, past_key_values=cache)
            model(inputs.prefill.input_ids)  # no images: text only
    finally:
        hook.remove()
    assert len(calls) == 2


def test_moe_real_dispatch_equals_the_per_token_definition() -> None:
    torch.manual_seed(0)
    model = build_model(TINY, device="cpu", dtype=torch.float32)
    moe = model.model.layers[1].mlp
    assert isinstance(moe, DeepseekV2MoE)
    x = torch.randn(1, 7, TINY.hidden_size)
    with torch.no_grad():
        got = moe(x)
        idx, weight, _ = moe.gate(x)
        flat = x.view(-1, TINY.hidden_size)
        want = torch.stack(
            [sum(weight[t, j] * moe.experts[int(idx[t, j])](flat[t]) for j in range(idx.shape[1])) for t in range(7)]
        )
        want = want.view(1, 7, -1) + moe.shared_experts(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert torch.allclose(weight.sum(-1), weight.sum(-1))  # raw probabilities, not renormalised
    assert bool((weight.sum(-1) < 1).all())


def _expert_rows(model: DeepseekOCRForCausalLM, layer: int, run: Any) -> list[int]:
    moe = model.model.layers[layer].mlp
    rows = [0] * len(moe.experts)
    hooks = [
        expert.register_forward_hook(lambda _m, args, _o, i=i: rows.__setitem__(i, rows[i] + args[0].shape[0]))
        for i, expert in enumerate(moe.experts)
    ]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return rows


def test_meta_moe_slices_follow_the_routing_model() -> None:
    model = build_model(TINY)
    inputs = _inputs(NO_CROPS, "meta", torch.bfloat16)
    tokens, experts, k = inputs.seq_len, TINY.n_routed_experts, TINY.num_experts_per_tok
    for routing in (None, RoutingModel.balanced(), RoutingModel.skewed(2.0)):
        rows = _expert_rows(model, 2, lambda r=routing: model(**inputs.prefill.kwargs(), routing=r))
        want = (routing or RoutingModel.balanced()).expert_counts(
            layer_idx=2, num_tokens=tokens, num_experts=experts, top_k=k
        )
        assert tuple(rows) == tuple(want)
        assert sum(rows) == tokens * k  # 83 * 2 = 166: MoE FLOPs do not depend on routing


def test_real_moe_slices_follow_a_routing_model_and_keep_the_host_read() -> None:
    """Off meta a routing model sets the slice sizes too (``measure --routing balanced``), and the host still reads
    the gate's counts once per MoE layer, as upstream does."""
    torch.manual_seed(0)
    model = build_model(TINY, device="cpu", dtype=torch.float32)
    inputs = _inputs(NO_CROPS, "cpu", torch.float32)
    tokens, experts, k = inputs.seq_len, TINY.n_routed_experts, TINY.num_experts_per_tok
    moe_layers = TINY.num_hidden_layers - TINY.first_k_dense_replace
    reads: list[int] = []
    real_cpu = torch.Tensor.cpu

    def counting_cpu(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        reads.append(self.numel())
        return real_cpu(self, *args, **kwargs)

    routing = RoutingModel.balanced()
    with torch.no_grad(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.Tensor, "cpu", counting_cpu)
        rows = _expert_rows(model, 2, lambda: model(**inputs.prefill.kwargs(), routing=routing))
    assert tuple(rows) == routing.expert_counts(layer_idx=2, num_tokens=tokens, num_experts=experts, top_k=k)
    assert reads.count(experts) == moe_layers  # one read of the per-expert counts per MoE layer


class _BadRouting:
    def expert_counts(self, *, layer_idx: int, num_tokens: int, num_experts: int, top_k: int) -> tuple[int, ...]:
        return (num_tokens,) * num_experts


def test_a_routing_model_with_wrong_totals_is_rejected() -> None:
    model = build_model(TINY)
    inputs = _inputs(NO_CROPS, "meta", torch.bfloat16)
    with pytest.raises(TraceError, match=r"expected 8 non-negative counts summing to 83 tokens x top-2 = 166"):
        model(**inputs.prefill.kwargs(), routing=_BadRouting())


def test_crops_that_do_not_fit_the_grid_are_one_clear_line() -> None:
    model = build_model(TINY)
    inputs = _inputs(CROPS, "meta", torch.bfloat16)
    kwargs = inputs.prefill.kwargs() | {"image_grid": [(3, 1)]}
    with pytest.raises(WorkloadError, match=r"^crop grid 3x1 needs 3 crops, got 2; pass the grid"):
        model(**kwargs)
    views = [ImageInputs(crops=None, global_view=inputs.prefill.images[0].global_view)]
    with pytest.raises(WorkloadError, match=r"images need images_seq_mask and one image_grid entry per batch row"):
        model(inputs.prefill.input_ids, images=views)


def test_clip_block_calls_attn_and_mlp_through_forward_like_upstream() -> None:
    model = build_model(TINY)
    block = model.model.vision_model.transformer.layers[0]
    fired: list[str] = []
    hooks = [
        mod.register_forward_hook(lambda *_, name=name: fired.append(name))
        for name, mod in (("self_attn", block.self_attn), ("mlp", block.mlp), ("qkv_proj", block.self_attn.qkv_proj))
    ]
    try:
        model(**_inputs(NO_CROPS, "meta", torch.bfloat16).prefill.kwargs())
    finally:
        for h in hooks:
            h.remove()
    assert fired == ["qkv_proj"]  # module hooks of self_attn/mlp never fire upstream either


def test_bf16_real_forward_runs_and_attention_implementations_agree() -> None:
    eager = build_model(TINY, device="cpu", dtype=torch.bfloat16)
    sdpa = build_model(TINY, device="cpu", dtype=torch.bfloat16, attn_implementation="sdpa")
    sdpa.load_state_dict(eager.state_dict())
    inputs = _inputs(CROPS, "cpu", torch.bfloat16)
    a, b = _run(eager, inputs), _run(sdpa, inputs)
    assert all(t.dtype == torch.float32 and bool(torch.isfinite(t).all()) for t in a)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0.05, atol=0.02)  # bf16 rounding differs between the two paths
