"""Each op family's FLOPs and bytes on real (meta) ops, against hand arithmetic; the byte rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from tracer_toys import meta, trace_toy

from llm_perf_opt.core import Cost
from llm_perf_opt.tracer.counter import FUSED_SDPA_OP, counting
from llm_perf_opt.tracer.ops.registry import RULES, resolve
from llm_perf_opt.tracer.ops.rule import OpTable, add, merge, zero_cost
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.tracer.stages import StageRules
from llm_perf_opt.tracer.state import TraceState

F32 = 4  # bytes per fp32 element


class Fn(nn.Module):
    """Runs ``fn(self, *inputs)``; owns ``params`` as parameters."""

    def __init__(self, fn: Callable[..., Any], **params: torch.Tensor) -> None:
        super().__init__()
        self.fn = fn
        for name, value in params.items():
            self.register_parameter(name, nn.Parameter(value, requires_grad=False))

    def forward(self, *inputs: Any) -> Any:
        return self.fn(self, *inputs)


def _trace(
    fn: Callable[..., Any], *inputs: torch.Tensor, attention: str = "flash", **params: torch.Tensor
) -> TraceResult:
    root = nn.Module()
    root.op = Fn(fn, **{k: torch.empty(v.shape) for k, v in params.items()})
    root.forward = lambda *xs: root.op(*xs)  # type: ignore[method-assign]
    return trace_toy(root, lambda: inputs, attention=attention)  # type: ignore[arg-type]


def _cost(result: TraceResult, op: str) -> Cost:
    return result.op_ledger[op].cost


def test_linear_addmm() -> None:
    r = _trace(lambda m, x: F.linear(x, m.w, m.b), meta(4, 8), w=meta(16, 8), b=meta(16))
    c = _cost(r, "aten.addmm.default")
    assert c.matmul_flops == c.matmul_flops_executed == 2 * 4 * 8 * 16
    assert c.vector_flops == 4 * 16  # bias add, one per output element
    assert c.bytes_read == (4 * 8 + 16 * 8 + 16) * F32  # x, W, b
    assert c.weight_bytes_read == (16 * 8 + 16) * F32  # W and b are parameters
    assert c.bytes_written == 4 * 16 * F32
    assert c.kernels == 1
    view = r.op_ledger["aten.t.default"]
    assert (view.bucket, view.rule, view.count, view.cost) == ("zero-cost", "view", 1, Cost())


def test_bmm_and_conv() -> None:
    r = _trace(lambda m, a, b: torch.bmm(a, b), meta(3, 4, 5), meta(3, 5, 6))
    assert _cost(r, "aten.bmm.default").matmul_flops == 2 * 3 * 4 * 5 * 6
    r = _trace(lambda m, x: F.conv2d(x, m.w, m.b), meta(1, 3, 8, 8), w=meta(4, 3, 3, 3), b=meta(4))
    c = _cost(r, "aten.convolution.default")
    assert c.matmul_flops == 2 * 1 * (6 * 6) * 4 * 3 * (3 * 3)  # N * out spatial * C_out * C_in * kernel
    assert c.vector_flops == 4 * 6 * 6
    assert c.weight_bytes_read == (4 * 3 * 3 * 3 + 4) * F32


def test_broadcast_read_once_and_views_free() -> None:
    r = _trace(lambda m, x, b: x + b.expand(4, 8), meta(4, 8), meta(8))
    c = _cost(r, "aten.add.Tensor")
    assert c.bytes_read == (4 * 8 + 8) * F32  # the expanded operand's stride-0 dim is read once
    assert c.bytes_written == 4 * 8 * F32
    assert c.vector_flops == 4 * 8
    r = _trace(lambda m, x: x.view(8, 4).transpose(0, 1).unsqueeze(0), meta(4, 8))
    assert {e.bucket for e in r.op_ledger.values()} == {"zero-cost"}
    assert r.root.cost == Cost()


def test_gather_reads_selected_rows() -> None:
    ids = torch.empty(3, dtype=torch.long, device="meta")
    r = _trace(lambda m, i: F.embedding(i, m.table), ids, table=meta(100, 16))
    c = _cost(r, "aten.embedding.default")
    assert c.bytes_read == 3 * 16 * F32 + 3 * 8  # three rows of the table, and the index
    assert c.weight_bytes_read == 3 * 16 * F32
    assert c.bytes_written == 3 * 16 * F32
    r = _trace(lambda m, x, i: x[i], meta(50, 4), torch.empty(7, dtype=torch.long, device="meta"))
    assert _cost(r, "aten.index.Tensor").bytes_read == 7 * 4 * F32 + 7 * 8


def test_vector_rules() -> None:
    r = _trace(lambda m, x: torch.softmax(x, -1), meta(2, 10))
    assert _cost(r, "aten._softmax.default").vector_flops == 5 * 20
    r = _trace(lambda m, x: F.layer_norm(x, (10,), m.w, m.b), meta(2, 10), w=meta(10), b=meta(10))
    assert _cost(r, "aten.native_layer_norm.default").vector_flops == 7 * 20  # 5 + weight + bias
    r = _trace(lambda m, x: F.silu(x), meta(3, 4))
    assert _cost(r, "aten.silu.default").vector_flops == 5 * 12
    r = _trace(lambda m, x: x.mean(-1, keepdim=True), meta(3, 4))
    assert _cost(r, "aten.mean.dim").vector_flops == 12 + 3  # sum over inputs + one divide per output


def test_inplace_reads_and_writes_self() -> None:
    r = _trace(lambda m, x, y: x.add_(y), meta(4, 8), meta(4, 8))
    c = _cost(r, "aten.add_.Tensor")
    assert (c.bytes_read, c.bytes_written) == (2 * 32 * F32, 32 * F32)


def test_scatter_rules() -> None:
    def put(m: nn.Module, x: torch.Tensor, idx: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        x[idx] = v
        return x

    idx = torch.empty(3, dtype=torch.long, device="meta")
    r = _trace(put, meta(10, 4), idx, meta(3, 4))
    c = _cost(r, "aten.index_put_.default")
    assert c.bytes_written == 3 * 4 * F32  # only the indexed rows
    assert c.bytes_read == 3 * 8 + 3 * 4 * F32  # index + values

    mask = torch.empty(6, 1, dtype=torch.bool, device="meta")
    r = _trace(lambda m, x, k, s: x.masked_scatter_(k, s), meta(6, 4), mask, meta(2, 4))
    c = _cost(r, "aten.masked_scatter_.default")
    assert c.bytes_written == 2 * 4 * F32  # the source's rows land in the masked rows
    assert c.bytes_read == 6 * 1 + 2 * 4 * F32


def test_fused_sdpa_dense_and_causal() -> None:
    q = meta(1, 2, 4, 8)
    r = _trace(lambda m, a: F.scaled_dot_product_attention(a, a, a, is_causal=True), q)
    c = _cost(r, FUSED_SDPA_OP)
    assert c.matmul_flops == 2 * 2 * 4 * 4 * 8 * 2  # QK^T and PV, dense
    assert c.matmul_flops_executed == 2 * 2 * (4 + 3 + 2 + 1) * 8 * 2  # 10 causal score entries per head
    assert c.vector_flops == 5 * 2 * 10
    assert c.bytes_read == 3 * 64 * F32  # Q, K, V; no score matrix
    assert c.bytes_written == 64 * F32
    assert r.root.by_category.keys() == {"attention"}
    assert "aten.bmm.default" not in r.op_ledger


def test_eager_sdpa_runs_math_pieces() -> None:
    q = meta(1, 2, 4, 8)
    r = _trace(lambda m, a: F.scaled_dot_product_attention(a, a, a, is_causal=True), q, attention="eager")
    assert FUSED_SDPA_OP not in r.op_ledger
    bmm = _cost(r, "aten.bmm.default")
    assert bmm.matmul_flops == bmm.matmul_flops_executed == 2 * 2 * 4 * 4 * 8 * 2  # dense, as math SDPA runs it


def test_kv_append_and_cache_write() -> None:
    model = nn.Module()
    state = TraceState(model, StageRules(vision=(), projector=(), language=()))
    cache = meta(1, 2, 10, 8)
    state.begin_pass("decode")
    state.mark_kv([cache])
    new = meta(1, 2, 1, 8)
    with torch.no_grad(), counting(state, fuse_sdpa=True):
        grown = torch.cat([cache, new], dim=2)
        cache[:, :, 3:4].copy_(new)
        _ = grown * 2.0
    raw = state.end_pass()
    rows = {key[3]: row for key, row in raw.table.items()}
    token = 1 * 2 * 1 * 8 * F32
    cat = rows["aten.cat.default"]
    assert (cat.bytes_read, cat.bytes_written, cat.kv_bytes_written) == (
        token,
        token,
        token,
    )  # reads/writes the new token only, as KV
    copy = rows["aten.copy_.default"]
    assert (copy.bytes_written, copy.kv_bytes_written) == (token, token)
    mul = rows["aten.mul.Tensor"]
    assert mul.kv_bytes_read == 1 * 2 * 11 * 8 * F32  # the grown cache is KV memory when read


def test_unsupported_is_listed() -> None:
    r = _trace(lambda m, a, b: torch.linalg.cross(a, b), meta(4, 3), meta(4, 3))
    ops = {u.op for u in r.unsupported}
    assert "aten.linalg_cross.default" in ops
    entry = next(u for u in r.unsupported if u.op == "aten.linalg_cross.default")
    assert entry.count == 1
    assert entry.module_paths == ("prefill/op",)
    assert r.op_ledger["aten.linalg_cross.default"].bucket == "unsupported"


def test_registry_views_and_inplace() -> None:
    rule, aliasing = resolve(torch.ops.aten.transpose.int)
    assert (rule.bucket, rule.name, aliasing) == ("zero-cost", "view", 1)
    rule, aliasing = resolve(torch.ops.aten.add_.Tensor)
    assert (rule.bucket, rule.name, aliasing) == ("counted", "elementwise", 2)
    rule, aliasing = resolve(torch.ops.aten.empty.memory_format)
    assert (rule.bucket, rule.name, aliasing) == ("zero-cost", "allocation", 0)


def test_every_registered_op_is_an_op_of_the_installed_torch() -> None:
    assert len(RULES) > 200
    for op in RULES:
        assert isinstance(op, torch._ops.OpOverloadPacket)
        namespace, _, name = op._qualified_op_name.partition("::")
        assert namespace == "aten" and getattr(torch.ops.aten, name) is op
        assert op.overloads(), f"{op} has no overloads in torch {torch.__version__}"


def test_the_registry_refuses_a_duplicate_and_an_unknown_op() -> None:
    table: OpTable = {}
    add(table, ["mm"], zero_cost("x", "y"))
    with pytest.raises(ValueError, match=r"aten\.mm is registered twice"):
        add(table, ["mm"], zero_cost("x", "y"))
    with pytest.raises(ValueError, match="registered twice"):
        merge(table, {torch.ops.aten.mm: zero_cost("z", "w")})
    with pytest.raises(LookupError, match=r"no op aten\.not_an_op"):
        add(table, ["not_an_op"], zero_cost("x", "y"))


def test_an_in_place_op_shares_its_out_of_place_rule_unless_registered_itself() -> None:
    assert torch.ops.aten.add_ not in RULES and resolve(torch.ops.aten.add_.Tensor)[0] is RULES[torch.ops.aten.add]
    assert resolve(torch.ops.aten.copy_.default)[0] is RULES[torch.ops.aten.copy_]


def test_grouped_mm_counted_where_flop_counter_mode_sees_zero() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    a, b = meta(16, 32, dtype=torch.bfloat16), meta(4, 32, 24, dtype=torch.bfloat16)
    offs = torch.empty(4, device="meta", dtype=torch.int32)
    counter = FlopCounterMode(display=False)
    with counter:
        torch._grouped_mm(a, b, offs=offs)
    assert counter.get_total_flops() == 0  # the documented difference (prior-art notes)
    r = _trace(lambda m, x, w, o: torch._grouped_mm(x, w, offs=o), a, b, offs)
    assert _cost(r, "aten._grouped_mm.default").matmul_flops == 2 * 16 * 32 * 24  # every row meets one 32x24 matrix
