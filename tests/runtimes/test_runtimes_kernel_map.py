"""Kernel maps: every class covered, FLOPs unchanged node by node, bytes and kernels never above eager, kernel counts
per decode step derived from the model's structure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from attrs import evolve

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.core.counts import COST_FIELDS
from llm_perf_opt.runtimes import RUNTIMES, get_runtime
from llm_perf_opt.runtimes.classes import OCR2_CLASSES, V1_CLASSES, class_of
from llm_perf_opt.runtimes.costs import analytic_tree, fused_costs, nodes_of
from llm_perf_opt.runtimes.kernel_map import fuse_tree, nodes_from_traced
from llm_perf_opt.sources import resolve_model_source
from llm_perf_opt.sources.deepseek_ocr2.config import analytic_config
from llm_perf_opt.tracer.trace import trace_workload
from llm_perf_opt.workloads import Workload, preset_workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

ROOT = Path(__file__).resolve().parents[2]
GOLDENS = sorted(ROOT.glob("third_party/**/golden/*.json"))
DECODER_PREFIXES = ("model.layers", "model.language_model", "model.embed_tokens", "model.norm", "lm_head")


def test_class_table_matches_every_committed_golden_tree() -> None:
    assert GOLDENS
    for path in GOLDENS:
        family = "ocr2" if "OCR-2" in str(path) else "v1"
        nodes = json.loads(path.read_text(encoding="utf-8"))["nodes"]
        wrong = {
            nid: node["class"]
            for nid, node in nodes.items()
            if nid != "root" and class_of(nid, family=family) != node["class"].rsplit(".", 1)[-1]
        }
        assert wrong == {}, path


def _is_decoder(pattern: str) -> bool:
    return pattern in ("", "model") or pattern.startswith(DECODER_PREFIXES)


def _covered(table: dict[str, str], rules: object) -> dict[str, str]:
    """Decoder paths whose class has no rule and no ancestor path with a subtree rule (what is left eager)."""
    assert isinstance(rules, dict)
    left: dict[str, str] = {}
    for pattern, cls in table.items():
        if not _is_decoder(pattern):
            continue
        parts = pattern.split(".")
        ancestors = [".".join(parts[:n]) for n in range(1, len(parts))]
        under_unit = any(table.get(a) in rules and rules[table[a]].scope == "subtree" for a in ancestors if a in table)
        if cls not in rules and not under_unit and cls != "ModuleList":
            left[pattern] = cls
    return left


@pytest.mark.parametrize("runtime_id", ["vllm", "sglang", "hf-cuda-graph"])
@pytest.mark.parametrize("table", [V1_CLASSES, OCR2_CLASSES], ids=["v1", "ocr2"])
def test_every_decoder_class_is_mapped_and_vision_listed_unmapped(runtime_id: str, table: dict[str, str]) -> None:
    runtime = get_runtime(runtime_id)
    assert _covered(dict(table), dict(runtime.rules)) == {}
    assert set(runtime.unmapped) == {"vision", "projector"}


def test_op_by_op_runtimes_map_nothing() -> None:
    for rid in ("hf-eager", "hf-flash"):
        assert RUNTIMES[rid].rules == {}
        assert set(RUNTIMES[rid].unmapped) == {"vision", "projector", "prefill", "decode"}


@pytest.fixture(scope="module")
def one_step(standard: Workload) -> Workload:
    return evolve(standard, max_new_tokens=3)


@pytest.mark.parametrize("runtime_id", list(RUNTIMES))
def test_fused_flops_equal_counted_and_bytes_kernels_never_exceed(
    runtime_id: str, v1_config: DeepseekOCRConfig, one_step: Workload
) -> None:
    tree = analytic_tree(v1_config, one_step)
    fused = fused_costs(get_runtime(runtime_id), v1_config, one_step)
    assert set(fused) == set(tree)
    for nid in tree:
        eager = tree.by_category(nid)
        mine = {c: v for c, v in fused[nid].by_category.items() if any(v.as_dict().values())}
        for cat in set(eager) | set(mine):
            e, f = eager.get(cat), mine.get(cat)
            assert e is not None, (nid, cat)
            if f is None:
                assert e.matmul_flops == e.vector_flops == 0, (nid, cat)
                continue
            for name in ("matmul_flops", "matmul_flops_executed", "vector_flops", "weight_bytes_read"):
                assert getattr(f, name) == getattr(e, name), (nid, cat, name)
            for name in ("bytes_read", "bytes_written", "kernels"):
                assert getattr(f, name) <= getattr(e, name), (nid, cat, name)
        assert set(COST_FIELDS) >= {"kernels"}


def _per_step(runtime_id: str, config: DeepseekOCRConfig, workload: Workload) -> int:
    fused = fused_costs(get_runtime(runtime_id), config, workload)
    steps = workload.max_new_tokens - 1
    total = sum(c.kernels for c in fused["decode"].by_category.values())
    assert total % steps == 0
    return total // steps


@pytest.mark.parametrize(("runtime_id", "attn"), [("vllm", 5), ("sglang", 6)])
def test_decode_kernels_per_step_follow_the_structure(
    runtime_id: str, attn: int, v1_config: DeepseekOCRConfig, one_step: Workload
) -> None:
    dense = v1_config.first_k_dense_replace
    moe = v1_config.num_hidden_layers - dense
    norms, mlp, fused_moe = 2, 3, 8 + 3  # per layer: two fused add+RMSNorm; routed MoE 8 kernels + shared MLP 3
    tree = analytic_tree(v1_config, one_step)
    root_own = (
        sum(c.kernels for c in nodes_of(tree, v1_config)["decode"].by_category.values())
        - sum(c.kernels for c in tree.by_category("decode/model").values())
        - sum(c.kernels for c in tree.by_category("decode/lm_head").values())
    )
    expected = (
        1  # embedding gather
        + dense * (norms + attn + mlp)
        + moe * (norms + attn + fused_moe)
        + 1  # final norm
        + 1  # lm_head GEMM
        + min(2, root_own // (one_step.max_new_tokens - 1))  # logits/sampling ops at the root, never above eager
    )
    assert _per_step(runtime_id, v1_config, one_step) == expected


def test_hf_cuda_graph_keeps_the_moe_eager_and_fuses_the_rest(v1_config: DeepseekOCRConfig, one_step: Workload) -> None:
    fused = fused_costs(get_runtime("hf-cuda-graph"), v1_config, one_step)
    tree = analytic_tree(v1_config, one_step)
    moe = "decode/model.layers.{1..11}.mlp"
    assert fused[moe].graphable is False
    assert sum(c.kernels for c in fused[moe].by_category.values()) == sum(
        c.kernels for c in tree.by_category(moe).values()
    )
    assert fused["decode/model.layers.0.self_attn"].graphable is True
    assert _per_step("hf-cuda-graph", v1_config, one_step) < _per_step("hf-eager", v1_config, one_step)


def test_ocr2_fused_flops_and_kernels_per_step() -> None:
    config = analytic_config()
    workload = Ocr2Workload.create(mode="single", page=(1024, 1024), max_new_tokens=3)
    tree = analytic_tree(config, workload)
    fused = fused_costs(get_runtime("vllm"), config, workload)
    for nid in tree:
        for cat, eager in tree.by_category(nid).items():
            mine = fused[nid].by_category.get(cat)
            flops = (mine.matmul_flops, mine.vector_flops) if mine else (0, 0)
            assert flops == (eager.matmul_flops, eager.vector_flops), (nid, cat)
            assert mine is None or mine.total_bytes <= eager.total_bytes
    dec = config.decoder
    dense, moe = dec.first_k_dense_replace, dec.num_hidden_layers - dec.first_k_dense_replace
    per_step = sum(c.kernels for c in fused["decode"].by_category.values()) // (workload.max_new_tokens - 1)
    root_own = (
        sum(c.kernels for c in tree.by_category("decode").values())
        - sum(c.kernels for c in tree.by_category("decode/model").values())
        - sum(c.kernels for c in tree.by_category("decode/lm_head").values())
    )
    model_own = sum(c.kernels for c in tree.by_category("decode/model").values()) - sum(
        c.kernels for c in tree.by_category("decode/model.language_model").values()
    )
    text_own = sum(c.kernels for c in tree.by_category("decode/model.language_model").values()) - sum(
        sum(c.kernels for c in tree.by_category(k).values()) for k in tree.children["decode/model.language_model"]
    )
    steps = workload.max_new_tokens - 1
    containers = sum(min(2 * steps, own) for own in (root_own, model_own, text_own)) // steps
    expected = 1 + dense * (2 + 5 + 3) + moe * (2 + 5 + 11) + 1 + 1 + containers
    assert per_step == expected


def test_the_traced_tree_fuses_like_the_analytic_tree() -> None:
    workload = evolve(preset_workload("dsocr-tiny-v1"), max_new_tokens=3)
    trace = trace_workload(resolve_model_source("deepseek-ocr-v1-tiny"), workload)
    config = DeepseekOCRConfig.tiny()
    rules = get_runtime("vllm").rules
    traced = fuse_tree(nodes_from_traced(trace.nodes), rules)
    analytic = fuse_tree(nodes_of(analytic_tree(config, workload), config), rules)
    decode = [nid for nid in traced if nid.startswith("decode")]
    assert decode
    for nid in decode:
        mine = {c: v.kernels for c, v in traced[nid].by_category.items() if v.kernels}
        theirs = {c: v.kernels for c, v in analytic[nid].by_category.items() if v.kernels}
        assert mine == theirs, nid
