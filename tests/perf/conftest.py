"""A small fake cost function for sweep tests (the analytic model is the default in production)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.core import Cost
from llm_perf_opt.core.tree import CostTree
from llm_perf_opt.perf.compiled import WorkloadCosts
from llm_perf_opt.workloads import Workload
from llm_perf_opt.workloads.routing import RoutingModel


def fake_costs(
    config: DeepseekOCRConfig, workload: Workload, *, attention: str, routing: RoutingModel
) -> WorkloadCosts:
    """Costs that scale like the real model's: vision with views, prefill with S*B, decode with (N-1) steps."""
    B, S, steps = workload.batch_size, workload.seq_len, workload.decode_steps
    views = (workload.num_crops + 1) * B
    vision = {
        "conv2d": Cost(
            matmul_flops=10**12 * views, matmul_flops_executed=10**12 * views, bytes_read=2 * 10**8 * views, kernels=300
        )
    }
    projector = {
        "linear": Cost(matmul_flops=10**9 * views, matmul_flops_executed=10**9 * views, bytes_read=10**7, kernels=5)
    }
    prefill = {
        "linear": Cost(
            matmul_flops=2 * 10**9 * S * B, matmul_flops_executed=2 * 10**9 * S * B, bytes_read=2 * 10**9, kernels=500
        ),
        "norm": Cost(vector_flops=10**6 * S * B, bytes_read=10**5 * S * B, kernels=25),
    }
    decode = {
        "linear": Cost(
            matmul_flops=2 * 10**9 * B * steps,
            matmul_flops_executed=2 * 10**9 * B * steps,
            bytes_read=(14 * 10**8 + 61_440 * S * B) * steps,
            kernels=1200 * steps,
        )
    }
    leaves = {
        "vision/model.sam_model": vision,
        "projector/model.projector": projector,
        "prefill/model.layers": prefill,
        "decode/model.layers": decode,
    }
    stages = {nid.split("/")[0]: costs for nid, costs in leaves.items()}
    root: dict[str, Cost] = {}
    for costs in leaves.values():
        for cat, cost in costs.items():
            root[cat] = root.get(cat, Cost()) + cost
    tree = CostTree.from_categories({"root": root, **stages, **leaves})
    return WorkloadCosts.from_tree(
        tree,
        weight_bytes=6_672_212_480,
        kv_cache_bytes=61_440 * (S + workload.max_new_tokens - 1) * B,
        peak_activation_bytes=4 * S * 129_280 * B,
    )


@pytest.fixture
def fake_cost_fn() -> Callable[..., WorkloadCosts]:
    return fake_costs
