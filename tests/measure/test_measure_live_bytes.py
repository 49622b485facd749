"""The live-bytes tracker on small real modules whose allocations are known exactly (fp32: 4 bytes per element)."""

from __future__ import annotations

import torch
from torch import nn

from llm_perf_opt.measure.live_bytes import LiveBytes, live_set_at_peak, live_sets_at_peaks

F32 = 4


def test_a_chain_of_ops_peaks_at_the_two_largest_overlapping_tensors() -> None:
    lin = nn.Linear(64, 32)
    x = torch.randn(4, 64)
    with torch.inference_mode(), LiveBytes() as meter:
        y = lin(x)  # addmm output [4, 32]: 512 B (the weight's transpose is a view of a resident storage)
        z = y.relu()  # [4, 32]: 512 B; live 1024 = peak so far
        del y  # live 512
        w = z * 2  # live 1024 again, never more
        del z, w
    assert meter.peak == 2 * 4 * 32 * F32 == 1024
    assert meter.live == 0


def test_views_and_in_place_ops_allocate_nothing() -> None:
    with torch.inference_mode(), LiveBytes() as meter:
        a = torch.zeros(8, 8)  # 256 B
        b = a.view(64)
        c = a.t()
        a.add_(1)
        b.mul_(2)
        torch.add(a, 1, out=c.contiguous().view(8, 8))  # contiguous() copies: one more 256 B tensor, freed after
        del b, c
    assert meter.peak == 2 * 64 * F32
    assert meter.live == 64 * F32  # `a` is still alive


def test_resident_parameters_are_not_counted_and_inputs_only_when_tracked() -> None:
    mlp = nn.Sequential(nn.Linear(16, 48), nn.GELU(), nn.Linear(48, 16))
    x = torch.randn(2, 16)  # 128 B, made before the run
    with torch.inference_mode(), LiveBytes() as meter:
        meter.track([x])  # live 128
        out = mlp(x)
        # Linear1 out [2,48] 384 -> GELU out 384 (live 128+384+384 = 896) -> Linear1 out dies when Sequential moves
        # on (its last reference is the loop variable, replaced by the GELU output): live 512 -> Linear2 out 128
        del out
    assert meter.peak == (2 * 16 + 2 * 48 + 2 * 48) * F32 == 896


def test_attention_scores_and_probabilities_overlap_at_the_softmax() -> None:
    B, H, L, D = 1, 2, 16, 8
    q = torch.randn(B, H, L, D)
    k = torch.randn(B, H, L, D)
    v = torch.randn(B, H, L, D)

    def eager_attention() -> torch.Tensor:
        scores = q @ k.transpose(-1, -2)  # bmm over views of q and k^T: [1,2,16,16] = 2048 B
        probs = scores.softmax(-1)  # another 2048 B while scores live
        return probs @ v  # [1,2,16,8] = 1024 B, while scores (a local until return) and probs live

    with torch.inference_mode(), LiveBytes() as meter:
        out = eager_attention()
    scores = B * H * L * L * F32
    assert meter.peak == 2 * scores + B * H * L * D * F32 == 5120
    assert meter.live == out.numel() * F32


def test_stage_peaks_start_from_what_is_live_at_the_boundary() -> None:
    with torch.inference_mode(), LiveBytes() as meter:
        meter.enter_stage("vision")
        a = torch.ones(100)  # 400
        b = torch.ones(100)  # 800 = vision's peak
        del b
        meter.enter_stage("prefill")  # starts at 400
        c = torch.ones(50)  # 600 = prefill's peak
        del c
        meter.enter_stage("decode")
        d = torch.ones(25)  # 500
        del d
        meter.enter_stage("decode")  # a second step: the stage keeps its highest
        del a
    assert meter.stage_peaks == {"vision": 800, "prefill": 600, "decode": 500}
    assert meter.peak == 800


def test_in_place_resize_counts_the_new_size() -> None:
    with torch.inference_mode(), LiveBytes() as meter:
        a = torch.empty(10)  # 40
        a.resize_(30)  # the storage grows to 120
        del a
    assert meter.peak == 30 * F32
    assert meter.live == 0


def test_storages_outliving_the_mode_do_not_call_back() -> None:
    meter = LiveBytes()
    with meter:
        kept = torch.ones(10)
    del kept  # freed after the mode closed: the total stays as it was at exit
    assert meter.live == 40


def test_live_sets_name_the_ops_alive_at_each_modules_peak() -> None:
    mlp = nn.Sequential(nn.Linear(16, 48), nn.GELU(), nn.Linear(48, 16))
    x = torch.randn(2, 16)  # 128 B input
    sets = live_sets_at_peaks(mlp, lambda: mlp(x), ["0", "1", "2"], inputs=[x])
    # Linear 0: input + its addmm output [2,48] (384 B)
    assert sets["0"].peak_bytes == 128 + 384
    assert sets["0"].by_op == {"<input>": 128, "aten.addmm.default": 384}
    # GELU: input + Linear 0's output (still referenced by Sequential's loop variable) + its own output
    assert sets["1"].by_op == {"<input>": 128, "aten.addmm.default": 384, "aten.gelu.default": 384}
    # Linear 2: Linear 0's output is gone; GELU's output and the new [2,16] output (128 B) are live
    assert sets["2"].by_op == {"<input>": 128, "aten.gelu.default": 384, "aten.addmm.default": 128}
    assert sets["1"].difference(sets["2"]) == {"aten.addmm.default": -256}
    assert live_set_at_peak(mlp, lambda: None, "0").peak_bytes == -1  # never called
