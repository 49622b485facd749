"""Serving iterations priced by a runtime: the :class:`~llm_perf_opt.perf.iteration.IterationTimer` of issue 14.

Per-token coefficients come from the fused cost tree of the request's own workload (:mod:`.costs`), read once per
(runtime, model, workload): the decode stage of a one-step probe gives the cost of one decoded token at context
``L0``, the prefill stage the cost of ``S`` prompt tokens.  Each (node, category) kernel group becomes a row whose
counters scale with what the iteration computes:

* weights: read once per forward; routed-expert rows scale with the expected distinct experts of the iteration's
  tokens under the request's routing (balanced: ``E(1-(1-k/E)^T)``, :func:`workloads.routing.expected_distinct_experts`;
  skewed or histogram: the same expectation over that model's expert popularity, :mod:`.coverage`) over those of the
  probe;
* attention rows: FLOPs per (query, key) pair, KV reads per key held, the rest per token;
* every other row: FLOPs and activation bytes per token;
* kernels: per forward (graphs or not); routed-expert rows of a runtime without a fused MoE kernel (an expert loop:
  hf-eager, hf-flash, and hf-cuda-graph, whose loop breaks the graph and runs eager) scale with the experts hit.

Bytes are the analytic tree's (counted in bf16) moved to the run's dtype once, cost by cost, by the project's one
rescale (:meth:`~llm_perf_opt.core.Cost.at_element_bytes`), so the bytes a report shows and the bytes the roofline
reads are the same numbers.

An iteration's time: every row's roofline ``max(compute, memory)`` plus a device gap per kernel, against the host's
launch time of the kernels not in a graph (overlapped: the larger wins; hf-eager adds them as today), plus the
runtime's host time per step.  Pages whose vision encoder runs in the iteration add the fused vision + projector
stages of their workload (eager: no runtime graphs the encoders).

Left out: the fused-MoE kernel's tile padding under skewed routing (it assumes balanced per-expert loads), chunked
prefill splitting (a chunk is priced as given), batching of several pages in one encoder call,
KV-block paging granularity, speculative decoding, tensor parallelism.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Required, TypedDict, Unpack

from attrs import evolve, field, frozen

from llm_perf_opt.core import Cost
from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import BYTES_PER_ELEMENT, DeviceSpec, get_device, normalize_dtype
from llm_perf_opt.perf.efficiency import CATEGORIES, DeviceProfile, default_profile
from llm_perf_opt.perf.iteration import BatchComposition, PrefillChunk
from llm_perf_opt.perf.roofline import Rates
from llm_perf_opt.perf.tree import stage_of
from llm_perf_opt.runtimes.catalog import Runtime, get_runtime
from llm_perf_opt.runtimes.costs import ModelConfig, WorkloadLike, decoder_config, fused_costs
from llm_perf_opt.runtimes.coverage import ExpertCoverage
from llm_perf_opt.runtimes.kernel_map import FusedNode
from llm_perf_opt.runtimes.moe_kernel import fused_moe_efficiency
from llm_perf_opt.workloads import RoutingModel, expected_distinct_experts

__all__ = [
    "COUNTED_DTYPE",
    "DEVICE_KERNEL_GAP_S",
    "ForwardTerms",
    "LoneRequest",
    "RequestTimes",
    "RuntimeIterationTimer",
    "device_kernel_gap_s",
    "lone_request_timer",
    "runtime_iteration_timer",
    "single_request_times",
]

DEVICE_KERNEL_GAP_S: Mapping[str, float] = {"nvidia": 2e-6, "amd": 4e-6}
"""Device time per kernel beyond its roofline when the host is not the limit (graph replay, or launches queued
ahead): kernel launch latency plus the ramp and tail of a small grid.  NVIDIA: the 1-3 us launch-to-launch gap of
back-to-back kernels and graph nodes on A100/H100 (the documented ``cuda-graph`` default, 2 us).  AMD CDNA3
(MI300X): HIP kernel dispatch through the AQL queue measures several microseconds per kernel, about twice NVIDIA's;
4 us."""


COUNTED_DTYPE = "bf16"
"""The dtype the analytic tree counts bytes in (``analytic_costs``' ``act_bytes=2``); the timer rescales from it."""


def device_kernel_gap_s(device: DeviceSpec) -> float:
    """:data:`DEVICE_KERNEL_GAP_S` of the device's vendor (AMD when its name says so, else NVIDIA)."""
    return DEVICE_KERNEL_GAP_S["amd" if device.name.upper().startswith("AMD") else "nvidia"]


@frozen
class _Row:
    """One kernel group's counters per unit of what it scales with."""

    category: int
    attention: bool
    expert: bool
    graphable: bool
    f_tok: float  # FLOPs (matmul executed and vector, each weighted by its peak later) per token
    v_tok: float
    f_pair: float
    v_pair: float
    b_fixed: float
    b_key: float
    b_tok: float
    kernels: float


def _rows(
    nodes: Mapping[str, FusedNode], stage: str, *, tokens: int, pairs: int, keys: int, dtype: str
) -> dict[str, _Row]:
    rows: dict[str, _Row] = {}
    for nid, node in nodes.items():
        if stage_of(nid) != stage:
            continue
        expert = ".experts" in nid
        for cat, cost in node.own.items():
            rows[f"{nid.partition('/')[2]}|{cat}"] = _row(
                cat, _at_dtype(cost, dtype), node, expert, tokens, pairs, keys
            )
    return rows


def _at_dtype(cost: Cost, dtype: str) -> Cost:
    """``cost`` (counted in :data:`COUNTED_DTYPE`) with its bytes at ``dtype``'s element width: the one rescale."""
    return cost.at_element_bytes(
        counted=BYTES_PER_ELEMENT[COUNTED_DTYPE], target=BYTES_PER_ELEMENT[normalize_dtype(dtype)]
    )


def _row(cat: str, cost: Cost, node: FusedNode, expert: bool, tokens: int, pairs: int, keys: int) -> _Row:
    attention = cat == "attention"
    weight = float(cost.weight_bytes_read)
    kv_read = float(cost.kv_bytes_read)
    act = float(cost.total_bytes) - weight - (kv_read if attention else 0.0)
    return _Row(
        category=CATEGORIES.index(cat),
        attention=attention,
        expert=expert,
        graphable=node.graphable,
        f_tok=0.0 if attention else cost.matmul_flops_executed / tokens,
        v_tok=0.0 if attention else cost.vector_flops / tokens,
        f_pair=cost.matmul_flops_executed / pairs if attention else 0.0,
        v_pair=cost.vector_flops / pairs if attention else 0.0,
        b_fixed=weight,
        b_key=kv_read / keys if attention else 0.0,
        b_tok=act / tokens,
        kernels=float(cost.kernels),
    )


@frozen(kw_only=True)
class _Side:
    """What one kind of work (prefill tokens or decode tokens) computes in an iteration."""

    tokens: int
    pairs: int
    keys: int


@frozen(kw_only=True)
class ForwardTerms:
    """One forward's time by what makes it: roofline, device gaps, host launches, per-step host time."""

    roofline_s: float = field(metadata={"help": "sum over kernel groups of max(compute, memory)"})
    compute_bound_s: float = field(metadata={"help": "part of roofline_s in groups where compute wins"})
    gap_s: float = field(metadata={"help": "device gap per kernel x kernels (runtimes with overlap)"})
    launch_s: float = field(metadata={"help": "host launch time of the kernels not in a graph"})
    step_host_s: float = field(metadata={"help": "scheduler / input / sampling host time per iteration"})
    kernels: float = field(metadata={"help": "kernels launched"})
    bytes: float = field(metadata={"help": "DRAM bytes moved"})
    graphs: str = field(metadata={"help": "full, piecewise or none"})

    def seconds(self, *, overlap: bool) -> float:
        """The forward's time: ``max(roofline + gaps, launches)`` when the host issues ahead of the device
        (``overlap``), else ``roofline + launches`` (op by op); plus the host time per step."""
        device = max(self.roofline_s + self.gap_s, self.launch_s) if overlap else self.roofline_s + self.launch_s
        return device + self.step_host_s

    def split(self, *, overlap: bool) -> tuple[float, float, float]:
        """(compute-bound, memory-bound, overhead) seconds summing to :meth:`seconds`: the roofline of the groups
        where compute wins, the rest of the roofline, and everything beyond the roofline (device gaps or host
        launches, host time per step)."""
        total = self.seconds(overlap=overlap)
        return self.compute_bound_s, self.roofline_s - self.compute_bound_s, total - self.roofline_s

    @property
    def bound(self) -> str:
        """What sets the pace: ``compute``, ``memory``, ``launch`` (device gaps between many small kernels) or
        ``host`` (the host cannot issue kernels / steps fast enough)."""
        device = self.roofline_s + self.gap_s
        if max(self.launch_s, self.step_host_s) > device:
            return "host"
        if self.gap_s > self.roofline_s:
            return "launch"
        return "compute" if self.compute_bound_s * 2 > self.roofline_s else "memory"


@frozen(kw_only=True)
class RequestTimes:
    """One request alone on the runtime: time to first token and mean time per output token (seconds)."""

    ttft_s: float
    tpot_s: float
    vision_s: float
    prefill_s: float
    decode_steps: int


@frozen(kw_only=True, eq=False)
class RuntimeIterationTimer:
    """Prices :class:`BatchComposition` s for one (runtime, model, device, dtype); build with
    :func:`runtime_iteration_timer`."""

    runtime: Runtime
    rates: Rates
    gap_s: float
    prefill_rows: Mapping[str, _Row]
    decode_rows: Mapping[str, _Row]
    vision_s: Mapping[str, float] = field(metadata={"help": "vision + projector seconds per page, by vision key"})
    vision_split: Mapping[str, tuple[float, float]] = field(
        metadata={"help": "(vision, projector) seconds per page, by vision key"}
    )
    experts: tuple[int, int] = field(metadata={"help": "(E, k) of the MoE layers"})
    vision_terms: Mapping[str, tuple[ForwardTerms, ForwardTerms]] = field(
        metadata={"help": "(vision, projector) terms of one page, by vision key"}
    )
    probe_coverage: Mapping[str, float] = field(metadata={"help": "distinct experts per layer the probes counted"})
    coverage: ExpertCoverage = field(metadata={"help": "expected distinct experts per layer under the routing"})
    _cache: dict[BatchComposition, float] = field(factory=dict)
    _aligned: list[tuple[_Row | None, _Row | None, list[float]]] = field(factory=list)
    _decode_coeffs: list[tuple[float, float, float, float, float, float, bool, float, bool, bool]] = field(factory=list)

    def iteration_s(self, batch: BatchComposition) -> float:
        """Seconds of one engine iteration (see the module docstring); cached per composition."""
        found = self._cache.get(batch)
        if found is None:
            found = self._cache[batch] = self._price(batch)
        return found

    def _price(self, batch: BatchComposition) -> float:
        if batch.is_empty:
            return 0.0
        pages = 0.0
        for chunk in batch.prefill:
            if chunk.vision_pages:
                if chunk.vision_key not in self.vision_s:
                    raise UserError(
                        f"vision_key {chunk.vision_key!r} has no workload; known: {', '.join(sorted(self.vision_s))}"
                    )
                pages += chunk.vision_pages * self.vision_s[chunk.vision_key]
        pre = _Side(
            tokens=sum(c.new_tokens for c in batch.prefill),
            pairs=sum(c.new_tokens * c.cached_tokens + c.new_tokens * (c.new_tokens + 1) // 2 for c in batch.prefill),
            keys=sum(c.cached_tokens + c.new_tokens for c in batch.prefill),
        )
        dec = _Side(tokens=len(batch.decode_context), pairs=sum(batch.decode_context), keys=sum(batch.decode_context))
        if pre.tokens + dec.tokens == 0:
            return pages
        graphed = self._graph_mode(pre, dec)
        return pages + self._forward_s(pre, dec, graphed) + self._host_s(pre)

    def _host_s(self, pre: _Side) -> float:
        """Host time of an iteration beyond its kernel launches: every step's, plus the prefill's when it prefills."""
        return self.runtime.step_host_s + (self.runtime.prefill_host_s if pre.tokens else 0.0)

    def _graph_mode(self, pre: _Side, dec: _Side) -> str:
        rt = self.runtime
        if pre.tokens == 0 and rt.graph_decode and dec.tokens <= rt.max_graph_batch:
            return "full"
        if pre.tokens > 0 and rt.graph_mixed == "piecewise":
            return "piecewise"
        return "none"

    def _coverage(self, tokens: int) -> float:
        return self.coverage.distinct(tokens)

    def moe_efficiency(self, tokens: int) -> float:
        """Useful fraction of the routed experts' matmul rows in an iteration of ``tokens`` tokens: the fused-MoE
        kernel's padded M tiles (:func:`~llm_perf_opt.runtimes.moe_kernel.fused_moe_efficiency`) for runtimes that
        run one (``Runtime.fused_moe``), else 1 (an eager expert loop computes exactly its tokens)."""
        e, k = self.experts
        if not (self.runtime.fused_moe and e and tokens):
            return 1.0
        return fused_moe_efficiency(T=tokens, E=e, k=k)

    def _decode_only_s(self, dec: _Side, graphed: str) -> float:
        """Decode-only iterations (the common case in serving): each row's counters folded into seconds per token,
        per pair and per key once, so a step costs a few float operations per kernel group."""
        if not self._decode_coeffs:
            self._fold_decode()
        base = self.probe_coverage["decode"]
        scale = self._coverage(dec.tokens) / base if base else 1.0
        inv_moe = 1.0 / self.moe_efficiency(dec.tokens)
        t, pairs, keys = dec.tokens, dec.pairs, dec.keys
        roof = launch = 0.0
        for c_mm, c_vec, c_pair, m_tok, m_key, m_fixed, expert, kernels, graphable, attention in self._decode_coeffs:
            compute = (c_mm * inv_moe if expert else c_mm) * t + c_vec * t + c_pair * pairs
            memory = m_tok * t + m_key * keys + (m_fixed * scale if expert else m_fixed)
            roof += compute if compute >= memory else memory
            k = kernels * scale if expert and not self.runtime.fused_moe else kernels
            if self.runtime.overlap:
                if not (graphable and (graphed == "full" or (graphed == "piecewise" and not attention))):
                    launch += k * self.runtime.host_per_kernel_s
            else:
                launch += k * self.rates.profile.kernel_overhead("decode")
        if self.runtime.overlap:
            return max(roof + self._decode_kernels(scale) * self.gap_s, launch)
        return roof + launch

    def _decode_kernels(self, scale: float) -> float:
        loop = not self.runtime.fused_moe  # an expert loop launches per expert hit; a grouped GEMM does not
        return sum(k * scale if expert and loop else k for *_, expert, k, _graphable, _attention in self._decode_coeffs)

    def _fold_decode(self) -> None:
        profile = self.rates.profile
        per_byte = self.rates.bytes_scale / (self.rates.memory_bandwidth_bytes_per_s * profile.memory_efficiency)
        for key in sorted(self.decode_rows):
            r = self.decode_rows[key]
            inv = 1.0 / profile.category_efficiency[CATEGORIES[r.category]]
            self._decode_coeffs.append(
                (
                    r.f_tok / self.rates.matmul_peak_flops * inv,
                    r.v_tok / self.rates.vector_peak_flops * inv,
                    (r.f_pair / self.rates.matmul_peak_flops + r.v_pair / self.rates.vector_peak_flops) * inv,
                    r.b_tok * per_byte,
                    r.b_key * per_byte,
                    r.b_fixed * per_byte,
                    r.expert,
                    r.kernels,
                    r.graphable,
                    r.attention,
                )
            )

    def _forward_s(self, pre: _Side, dec: _Side, graphed: str) -> float:
        """The hot path of :meth:`iteration_s`: the same sums as :meth:`_terms`, over precomputed aligned rows."""
        if pre.tokens == 0:
            return self._decode_only_s(dec, graphed)
        if not self._aligned:
            self._align()
        profile = self.rates.profile
        inv_mm = 1.0 / self.rates.matmul_peak_flops
        inv_vec = 1.0 / self.rates.vector_peak_flops
        per_byte = self.rates.bytes_scale / (self.rates.memory_bandwidth_bytes_per_s * profile.memory_efficiency)
        scale = self._coverage(pre.tokens + dec.tokens)
        base = self.probe_coverage["prefill" if pre.tokens else "decode"]
        scale = scale / base if base else 1.0
        inv_moe = 1.0 / self.moe_efficiency(pre.tokens + dec.tokens)
        expert_loop = not self.runtime.fused_moe  # kernels per expert hit (hf-cuda-graph too: its loop runs eager)
        overlap = self.runtime.overlap
        host_k = self.runtime.host_per_kernel_s
        t_k = profile.kernel_overhead("decode" if pre.tokens == 0 else "prefill")
        roof = kernels_gap = launch = 0.0
        pt, pp, pk = pre.tokens, pre.pairs, pre.keys
        dt, dp, dk = dec.tokens, dec.pairs, dec.keys
        for prow, drow, inv_eff in self._aligned:
            p = prow if pt else None
            d = drow if dt else None
            if p is None and d is None:
                continue
            first = p if p is not None else d
            assert first is not None
            f = v = b = fixed = kernels = 0.0
            if p is not None:
                f += p.f_tok * pt + p.f_pair * pp
                v += p.v_tok * pt + p.v_pair * pp
                b += p.b_tok * pt + p.b_key * pk
                fixed = p.b_fixed
                kernels = p.kernels
            if d is not None:
                f += d.f_tok * dt + d.f_pair * dp
                v += d.v_tok * dt + d.v_pair * dp
                b += d.b_tok * dt + d.b_key * dk
                fixed = max(fixed, d.b_fixed)
                kernels = max(kernels, d.kernels)
            if first.expert:
                fixed *= scale
                f *= inv_moe
                if expert_loop:
                    kernels *= scale
            compute = (f * inv_mm + v * inv_vec) * inv_eff[first.category]
            memory = (b + fixed) * per_byte
            roof += compute if compute >= memory else memory
            if overlap:
                kernels_gap += kernels
                in_graph = first.graphable and (graphed == "full" or (graphed == "piecewise" and not first.attention))
                if not in_graph:
                    launch += kernels * host_k
            else:
                launch += kernels * t_k
        if overlap:
            return max(roof + kernels_gap * self.gap_s, launch)
        return roof + launch

    def _align(self) -> None:
        inv_eff = [1.0 / self.rates.profile.category_efficiency[c] for c in CATEGORIES]
        keys = sorted(set(self.prefill_rows) | set(self.decode_rows))
        self._aligned.extend((self.prefill_rows.get(k), self.decode_rows.get(k), inv_eff) for k in keys)

    def forward_terms(self, batch: BatchComposition) -> ForwardTerms:
        """What the decoder forward of ``batch`` is made of (its pages' encoders left out: :attr:`vision_terms`);
        :meth:`ForwardTerms.seconds` equals :meth:`iteration_s` minus the pages' encoder seconds."""
        pre = _Side(
            tokens=sum(c.new_tokens for c in batch.prefill),
            pairs=sum(c.new_tokens * c.cached_tokens + c.new_tokens * (c.new_tokens + 1) // 2 for c in batch.prefill),
            keys=sum(c.cached_tokens + c.new_tokens for c in batch.prefill),
        )
        dec = _Side(tokens=len(batch.decode_context), pairs=sum(batch.decode_context), keys=sum(batch.decode_context))
        return self._terms(pre, dec, self._graph_mode(pre, dec))

    def decode_terms(self, *, contexts: tuple[int, ...]) -> ForwardTerms:
        """What one decode step of sequences at ``contexts`` is made of (for reports and the validation page)."""
        dec = _Side(tokens=len(contexts), pairs=sum(contexts), keys=sum(contexts))
        empty = _Side(tokens=0, pairs=0, keys=0)
        return self._terms(empty, dec, self._graph_mode(empty, dec))

    def decode_terms_of(self, key: str, *, contexts: tuple[int, ...]) -> ForwardTerms:
        """:meth:`decode_terms` of one kernel group (``"<path>|<category>"``, a key of ``decode_rows``)."""
        dec = _Side(tokens=len(contexts), pairs=sum(contexts), keys=sum(contexts))
        empty = _Side(tokens=0, pairs=0, keys=0)
        return self._terms(empty, dec, self._graph_mode(empty, dec), only=key)

    def prefill_terms(self, *, tokens: int) -> ForwardTerms:
        """What a prefill of ``tokens`` prompt tokens (no cache, no page) is made of."""
        pre = _Side(tokens=tokens, pairs=tokens * (tokens + 1) // 2, keys=tokens)
        empty = _Side(tokens=0, pairs=0, keys=0)
        return self._terms(pre, empty, self._graph_mode(pre, empty))

    def _terms(self, pre: _Side, dec: _Side, graphed: str, only: str | None = None) -> ForwardTerms:
        profile = self.rates.profile
        inv_mm = 1.0 / self.rates.matmul_peak_flops
        inv_vec = 1.0 / self.rates.vector_peak_flops
        per_byte = self.rates.bytes_scale / (self.rates.memory_bandwidth_bytes_per_s * profile.memory_efficiency)
        eff = [profile.category_efficiency[c] for c in CATEGORIES]
        cover = self._coverage(pre.tokens + dec.tokens)
        moe = self.moe_efficiency(pre.tokens + dec.tokens)
        roof = compute_s = gap = launch = 0.0
        kernels_total = bytes_total = 0.0
        keys = set(self.prefill_rows if pre.tokens else ()) | set(self.decode_rows if dec.tokens else ())
        if only is not None:
            keys &= {only}
        for key in sorted(keys):
            f = v = b = kernels = fixed = 0.0
            first: _Row | None = None
            for side, rows in ((pre, self.prefill_rows), (dec, self.decode_rows)):
                row = rows.get(key) if side.tokens else None
                if row is None:
                    continue
                first = first or row
                f += row.f_tok * side.tokens + row.f_pair * side.pairs
                v += row.v_tok * side.tokens + row.v_pair * side.pairs
                b += row.b_tok * side.tokens + row.b_key * side.keys
                fixed = max(fixed, row.b_fixed)
                kernels = max(kernels, row.kernels)
            if first is None:
                continue
            if first.expert:
                base = self.probe_coverage["prefill" if pre.tokens else "decode"]
                scale = cover / base if base else 1.0
                fixed *= scale
                f /= moe
                if not self.runtime.fused_moe:
                    kernels *= scale
            b += fixed
            compute = (f * inv_mm + v * inv_vec) / eff[first.category]
            memory = b * per_byte
            roof += max(compute, memory)
            compute_s += compute if compute >= memory else 0.0
            kernels_total += kernels
            bytes_total += b
            in_graph = first.graphable and (graphed == "full" or (graphed == "piecewise" and not first.attention))
            if self.runtime.overlap:
                gap += kernels * self.gap_s
                if not in_graph:
                    launch += kernels * self.runtime.host_per_kernel_s
            else:
                launch += kernels * profile.kernel_overhead("decode" if pre.tokens == 0 else "prefill")
        return ForwardTerms(
            roofline_s=roof,
            compute_bound_s=compute_s,
            gap_s=gap,
            launch_s=launch,
            step_host_s=self._host_s(pre),
            kernels=kernels_total,
            bytes=bytes_total,
            graphs=graphed,
        )

    def request_times(self, *, prompt_tokens: int, max_new_tokens: int, vision_key: str = "") -> RequestTimes:
        """One request alone: a prefill of ``prompt_tokens`` (with its page when ``vision_key`` names one), then
        ``max_new_tokens - 1`` decode steps over the growing context (TPOT = their mean)."""
        pages = 1 if vision_key else 0
        first = BatchComposition(
            prefill=(PrefillChunk(new_tokens=prompt_tokens, vision_pages=pages, vision_key=vision_key),)
        )
        vision = self.vision_s[vision_key] * pages if pages else 0.0
        prefill = self.iteration_s(first) - vision
        steps = max_new_tokens - 1
        decode = sum(
            self.iteration_s(BatchComposition(decode_context=(prompt_tokens + i,))) for i in range(1, steps + 1)
        )
        ttft = self.runtime.request_overhead_s + vision + prefill
        return RequestTimes(
            ttft_s=ttft, tpot_s=decode / steps if steps else 0.0, vision_s=vision, prefill_s=prefill, decode_steps=steps
        )


def _probe_workload(workload: WorkloadLike) -> WorkloadLike:
    """The same page with one decode step (its decode stage is the cost of one token at context S+1)."""
    return evolve(workload, max_new_tokens=2, batch_size=1)


def _runtime_profile(runtime: Runtime, profile: DeviceProfile | None) -> DeviceProfile:
    if profile is not None:
        return profile
    return default_profile("eager")


@lru_cache(maxsize=64)
def _timer(
    runtime: Runtime,
    config: ModelConfig,
    device_id: str,
    dtype: str,
    workloads: tuple[tuple[str, WorkloadLike], ...],
    attention: str,
    profile_json: str | None,
    routing: RoutingModel | None,
) -> RuntimeIterationTimer:
    profile = None if profile_json is None else DeviceProfile.from_mapping(json.loads(profile_json))
    device = get_device(device_id)
    # the rows' bytes are rescaled to dtype already (_at_dtype), so the rates read them as counted
    rates = Rates.for_device(device, dtype=dtype, profile=_runtime_profile(runtime, profile), counted_dtype=dtype)
    probe = _probe_workload(workloads[0][1])
    nodes = fused_costs(runtime, config, probe, attention=attention)
    s = probe.seq_len
    dec_cfg = decoder_config(config)
    e, k = dec_cfg.n_routed_experts, dec_cfg.num_experts_per_tok
    pairs = s * (s + 1) // 2 if attention == "flash" else s * s
    prefill_rows = _rows(nodes, "prefill", tokens=s, pairs=pairs, keys=s, dtype=dtype)
    decode_rows = _rows(nodes, "decode", tokens=1, pairs=s + 1, keys=s + 1, dtype=dtype)
    vision: dict[str, float] = {}
    split: dict[str, tuple[float, float]] = {}
    terms: dict[str, tuple[ForwardTerms, ForwardTerms]] = {}
    for key, wl in workloads:
        if key:
            terms[key] = _encoder_terms(runtime, config, wl, attention, rates, device, dtype)
            split[key] = (
                terms[key][0].seconds(overlap=runtime.overlap),
                terms[key][1].seconds(overlap=runtime.overlap),
            )
            vision[key] = sum(split[key])
    timer = RuntimeIterationTimer(
        runtime=runtime,
        rates=rates,
        gap_s=device_kernel_gap_s(device),
        prefill_rows=prefill_rows,
        decode_rows=decode_rows,
        vision_s=vision,
        vision_split=split,
        vision_terms=terms,
        experts=(e, k),
        probe_coverage={"prefill": _probe_distinct(e, k, s), "decode": _probe_distinct(e, k, 1)},
        coverage=ExpertCoverage.of(
            routing, E=e, k=k, layers=[i for i in range(dec_cfg.num_hidden_layers) if dec_cfg.is_moe_layer(i)]
        ),
    )
    return timer


def _probe_distinct(e: int, k: int, tokens: int) -> float:
    """The probe's ``tokens``-token forward (its tree is counted under balanced routing) on the balanced coverage
    scale of :meth:`RuntimeIterationTimer._coverage` (``E(1-(1-k/E)^T)``), so a balanced iteration of the probe's own
    size scales its expert rows by exactly 1 and reproduces the probe's tree (a 10-token text-only prefill: the tree's
    60 experts, not 60 x 40.1/60).  Equal to the old ``min(E, T*k)`` at ``T = 1`` and for page prompts (hundreds of
    tokens: 64.0 in floats)."""
    return expected_distinct_experts(E=e, k=k, T=tokens) if e else 0.0


def _encoder_terms(
    runtime: Runtime,
    config: ModelConfig,
    workload: WorkloadLike,
    attention: str,
    rates: Rates,
    device: DeviceSpec,
    dtype: str,
) -> tuple[ForwardTerms, ForwardTerms]:
    """(vision, projector) terms of one page, run op by op as traced (no runtime graphs or fuses the encoders):
    each kernel group's roofline, and per kernel a device gap with the host's launch overlapped (runtimes with
    overlap) or the profile's per-kernel overhead added (op by op)."""
    nodes = fused_costs(runtime, config, _probe_workload(workload), attention=attention)
    profile = rates.profile
    per_byte = rates.bytes_scale / (rates.memory_bandwidth_bytes_per_s * profile.memory_efficiency)
    gap = device_kernel_gap_s(device)
    out: list[ForwardTerms] = []
    for stage in ("vision", "projector"):
        roof = compute_s = host_s = kernels = nbytes = 0.0
        for nid, node in nodes.items():
            if stage_of(nid) != stage:
                continue
            for cat, counted in node.own.items():
                cost = _at_dtype(counted, dtype)
                compute = (
                    cost.matmul_flops_executed / rates.matmul_peak_flops + cost.vector_flops / rates.vector_peak_flops
                ) / profile.category_efficiency[cat]
                memory = cost.total_bytes * per_byte
                roof += max(compute, memory)
                compute_s += compute if compute >= memory else 0.0
                kernels += cost.kernels
                nbytes += cost.total_bytes
                per_kernel = runtime.host_per_kernel_s if runtime.overlap else profile.kernel_overhead(stage)
                host_s += cost.kernels * per_kernel
        out.append(
            ForwardTerms(
                roofline_s=roof,
                compute_bound_s=compute_s,
                gap_s=kernels * gap if runtime.overlap else 0.0,
                launch_s=host_s,
                step_host_s=0.0,
                kernels=kernels,
                bytes=nbytes,
                graphs="none",
            )
        )
    return out[0], out[1]


def runtime_iteration_timer(
    *,
    runtime: str | Runtime,
    config: ModelConfig,
    device: str,
    dtype: str = "bf16",
    workloads: Mapping[str, WorkloadLike],
    attention: str = "flash",
    profile: DeviceProfile | None = None,
    routing: RoutingModel | None = None,
) -> RuntimeIterationTimer:
    """An :class:`~llm_perf_opt.perf.iteration.IterationTimer` for ``runtime`` on ``device``.

    ``workloads`` maps each ``vision_key`` a :class:`~llm_perf_opt.perf.iteration.PrefillChunk` may name to its page
    workload (``""`` may map a workload used only for the decoder probe); the first entry's workload is the probe.
    ``config``: a v1 :class:`~llm_perf_opt.config.DeepseekOCRConfig` or a
    :class:`~llm_perf_opt.config.deepseek_ocr2.DeepseekOCR2Config`.  ``routing``: the request's MoE routing, which
    sets how many distinct experts an iteration reads (``None``: balanced).  Cached per argument set.
    """
    if not workloads:
        raise UserError("runtime_iteration_timer needs at least one workload (its page prices the vision encoder)")
    chosen = get_runtime(runtime) if isinstance(runtime, str) else runtime
    key = None if profile is None else json.dumps(profile.as_dict(), sort_keys=True)  # hashable for the cache
    return _timer(chosen, config, device, dtype, tuple(workloads.items()), attention, key, routing)


class LoneRequest(TypedDict, total=False):
    """The arguments of one request alone on a runtime (:func:`single_request_times`, :func:`lone_request_timer`,
    :func:`llm_perf_opt.runtimes.request.runtime_run`): the first four are required; ``dtype`` defaults to bf16,
    ``attention`` to flash, ``profile`` to None (the runtime's own), ``text_only`` to False and ``routing`` to None
    (balanced)."""

    runtime: Required[str | Runtime]
    config: Required[ModelConfig]
    device: Required[str]
    workload: Required[WorkloadLike]
    dtype: str
    attention: str
    profile: DeviceProfile | None
    text_only: bool
    routing: RoutingModel | None


def single_request_times(**request: Unpack[LoneRequest]) -> RequestTimes:
    """TTFT and TPOT of one request of ``workload`` alone on ``runtime`` (``text_only``: no page, the prompt only)."""
    timer, key, prompt = lone_request_timer(**request)
    return timer.request_times(prompt_tokens=prompt, max_new_tokens=request["workload"].max_new_tokens, vision_key=key)


def lone_request_timer(**request: Unpack[LoneRequest]) -> tuple[RuntimeIterationTimer, str, int]:
    """The timer of one request of ``workload`` alone, the ``vision_key`` its page is priced under and its prompt
    length ``S``: a page request uses ``"page"`` and the workload's ``seq_len`` (image tokens + prompt + BOS); a
    ``text_only`` one has no page (``""``, the workload serving only as the decoder probe) and ``S`` = prompt + BOS.
    """
    text_only = request.get("text_only", False)
    workload = request["workload"]
    key = "" if text_only else "page"
    timer = runtime_iteration_timer(
        runtime=request["runtime"],
        config=request["config"],
        device=request["device"],
        dtype=request.get("dtype", "bf16"),
        workloads={key: workload},
        attention=request.get("attention", "flash"),
        profile=request.get("profile"),
        routing=request.get("routing"),
    )
    return timer, key, workload.prompt_tokens + 1 if text_only else workload.seq_len
