"""Attribution state of one traced pass: the explicit module call stack, the op table, tensor liveness.

The hooks (:mod:`llm_perf_opt.tracer.hooks`) push and pop :class:`Frame` objects; the dispatch counter
(:mod:`llm_perf_opt.tracer.counter`) calls :meth:`TraceState.record` for each op.  An op is credited to the
innermost module *call* on the stack.  Live activation bytes are tracked per storage with weak references
(a storage dies when its last tensor does); each frame keeps the highest live level seen while it was open.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from llm_perf_opt.core.counts import Counters
from llm_perf_opt.tracer.categories import category_of_class
from llm_perf_opt.tracer.grouping import Structure
from llm_perf_opt.tracer.index import ModelIndex
from llm_perf_opt.tracer.ops.io import KV, WEIGHT, OpCall, OpIO, SchemaIndex, tensors_in
from llm_perf_opt.tracer.ops.registry import FRESH
from llm_perf_opt.tracer.ops.rule import Rule
from llm_perf_opt.tracer.raw import OpKey, RawTrace
from llm_perf_opt.tracer.replay import CallReplay, CallTapes, replayable_paths
from llm_perf_opt.tracer.stages import CONTAINER, LANGUAGE, PROJECTOR, VISION, StageRules, stage_kind

__all__ = ["Frame", "ModuleInfo", "PassCutError", "TraceState", "module_infos", "tree_facts"]

_Tensor = torch.Tensor
_DIGITS = re.compile(r"\d+")


class PassCutError(Exception):
    """Raised on entering the language model after the vision stages when :attr:`TraceState.cut_after_vision`."""


class ModuleInfo:
    """Static facts about one module of the traced root."""

    __slots__ = ("category", "event", "kind", "list_path", "path")

    def __init__(self, path: str, module: nn.Module, rules: StageRules, list_path: str | None) -> None:
        self.path = path
        self.kind = stage_kind(path, rules)
        self.category = category_of_class(type(module).__name__)
        self.list_path = list_path
        tail = ".".join(path.split(".")[-2:]) if list_path is not None else path.rsplit(".", 1)[-1]
        self.event = "@" + _DIGITS.sub("#", tail)


def module_infos(index: ModelIndex, rules: StageRules) -> dict[int, ModuleInfo]:
    """``id(module) -> ModuleInfo`` for every module of the indexed root (first path wins for shared modules)."""
    parent_list = {cpath: path for path in index.list_paths for _, cpath, _ in index.children[path]}
    return {id(module): ModuleInfo(path, module, rules, parent_list.get(path)) for path, module in index.entries}


class Frame:
    """One open module call."""

    __slots__ = ("info", "peaks", "stage", "touched")

    def __init__(self, info: ModuleInfo, stage: str | None, live: int) -> None:
        self.info = info
        self.stage = stage  # None: a container, whose ops follow the anchor
        self.peaks: dict[str, int] = {stage: live} if stage is not None else {}
        self.touched: set[str] = {stage} if stage is not None else set()


_FACTS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], StageRules, Any]] = weakref.WeakKeyDictionary()


def tree_facts(
    root: nn.Module, rules: StageRules, index: ModelIndex | None = None
) -> tuple[ModelIndex, Structure, dict[int, ModuleInfo]]:
    """The index, structure and module infos of ``root`` under ``rules``: worked out once per tree and reused by its
    later traces while it holds the same modules (``calibrate`` and ``validation-doc`` trace one tree many times)."""
    members = tuple(map(id, root.modules()))
    known = _FACTS.get(root)
    if index is None and known is not None and known[0] == members and known[1] == rules:
        facts: tuple[ModelIndex, Structure, dict[int, ModuleInfo]] = known[2]
        return facts
    index = index or ModelIndex(root)
    facts = (index, Structure(root), module_infos(index, rules))
    _FACTS[root] = (members, rules, facts)
    return facts


class TraceState:
    """Counters for one pass; :meth:`begin_pass` resets the per-pass parts."""

    def __init__(
        self,
        root: nn.Module,
        rules: StageRules,
        index: ModelIndex | None = None,
        *,
        pure: frozenset[type] = frozenset(),
    ) -> None:
        self.index, self.structure, self.infos = tree_facts(root, rules, index)
        self.root_info = self.infos[id(root)]
        self.kinds: dict[int, int] = {}
        self._held: list[Any] = []  # weight and KV storages, kept alive so their ids stay unique
        for p in root.parameters():
            st = p.untyped_storage()
            self.kinds[id(st)] = WEIGHT
            self._held.append(st)
        self.io = OpIO(self.kinds)
        self.raw = RawTrace()
        self.pass_stage = "prefill"
        self.anchor: str | None = None
        self.frames: list[Frame] = []
        self.live = 0
        self._alive: dict[int, tuple[Any, int, OpKey, int]] = {}
        self._producer: dict[int, int] = {}  # id(storage) -> id(weakref) in _alive
        self._kv_owner: dict[int, tuple[str, str]] = {}
        self._chain_prev: dict[str, Any] = {}
        kinds = {path: self.infos[id(module)].kind for path, module in self.index.entries}
        replayable = replayable_paths(self.index, kinds, CONTAINER, pure) if pure else {}
        self.replay = CallReplay(self, replayable, self.index.list_paths) if replayable else None
        """Repeated calls of ``pure`` classes replayed from a tape (:mod:`llm_perf_opt.tracer.replay`); None: off."""
        self.call_tapes = CallTapes(self)
        """Repeated calls inside a module (:func:`llm_perf_opt.core.repeats.repeatable`), replayed where a pass lets
        them (:func:`llm_perf_opt.tracer.counter.counting`)."""
        self.cut_after_vision = False
        """Batch extrapolation points: stop a pass (:class:`PassCutError`) when the language model starts after a vision
        or projector anchor; only the vision and projector stages of such a pass are used."""
        self.glue_stage: str | None = None
        """A language-only prefill (the row stages skipped): once its first language anchor returns, the ops around
        the calls of none are this stage's until the next language anchor, as they are after the row stages that a
        full pass runs there (DeepSeek-OCR v1 injects its images right after ``embed_tokens``).  None: off."""

    # -- passes -----------------------------------------------------------------------------------
    def begin_pass(self, stage: str) -> None:
        """Start a forward pass whose language-model calls are ``stage`` (prefill or decode)."""
        self.raw = RawTrace()
        self.pass_stage = stage
        self.anchor = None
        # liveness starts from zero: tensors of earlier passes still alive are forgotten (their refs die here)
        self.live = 0
        self._alive.clear()
        self._producer.clear()
        self._chain_prev = {}
        self.frames = [Frame(self.root_info, None, self.live)]  # sentinel: ops outside any call

    def close_open_frames(self) -> None:
        """Close the calls still open (after a :class:`PassCutError`), innermost first."""
        while len(self.frames) > 1:
            self._close(self.frames.pop())

    def end_pass(self) -> RawTrace:
        sentinel = self.frames[0]
        for stage, peak in sentinel.peaks.items():
            key = (stage, "")
            self.raw.peaks[key] = max(self.raw.peaks.get(key, 0), peak)
        self.frames = []
        return self.raw

    def track_inputs(self, tensors: Iterable[_Tensor]) -> None:
        """Count the pass's input tensors as live activations."""
        for t in tensors:
            self._register(t, ("other", "", "data_movement", "<input>"))

    def mark_kv(self, tensors: Iterable[_Tensor]) -> None:
        """Declare KV-cache tensors handed to the pass (a decode step's past cache)."""
        for t in tensors:
            st = t.untyped_storage()
            self.kinds[id(st)] = KV
            self._held.append(st)

    def claim_kv_outputs(self, tensors: Iterable[_Tensor]) -> None:
        """After a pass: the returned cache tensors are KV memory.  Their bytes count as KV held by the module
        that produced them; a producer that was not already a KV append also gets them as ``kv_bytes_written``."""
        raw = self.raw
        for t in tensors:
            st = t.untyped_storage()
            n = t.numel() * t.element_size()
            owner = self._kv_owner.get(id(st))
            if owner is None:
                ref_id = self._producer.get(id(st))
                if ref_id is None:
                    continue
                key = self._alive[ref_id][2]
                row = raw.table.get(key)
                if row is not None:
                    row.kv_bytes_written += n
                owner = (key[0], key[1])
            raw.kv_held[owner] = raw.kv_held.get(owner, 0) + n

    def release_kv(self) -> None:
        """Forget KV storages between passes (their ids may be reused afterwards)."""
        for sid in [sid for sid, kind in self.kinds.items() if kind == KV]:
            del self.kinds[sid]
        self._held = [st for st in self._held if id(st) in self.kinds]
        self._kv_owner.clear()

    # -- calls --------------------------------------------------------------------------------------
    def push(self, info: ModuleInfo) -> None:
        kind = info.kind
        if kind == CONTAINER:
            stage = None
        elif kind == VISION:
            stage = self.anchor = "vision"
        elif kind == PROJECTOR:
            stage = self.anchor = "projector"
        elif kind == LANGUAGE:
            if self.cut_after_vision and self.anchor in ("vision", "projector"):
                raise PassCutError(info.path)
            stage = self.anchor = self.pass_stage
        else:
            stage = self.pass_stage
        parent = self.frames[-1]
        pstage = parent.stage or stage or self.anchor or "other"
        sig = self.raw.sigs.get((pstage, parent.info.path))
        if sig is None:
            sig = self.raw.sigs[(pstage, parent.info.path)] = {}
        sig[info.event] = None
        self.frames.append(Frame(info, stage, self.live))

    def pop(self, info: ModuleInfo, inputs: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        frames = self.frames
        while len(frames) > 1:
            frame = frames.pop()
            self._close(frame)
            if frame.info is info:
                break
        if info.list_path is not None:
            self._chain(info, inputs, kwargs, output)
        if self.glue_stage is not None and info.kind == LANGUAGE:
            self.anchor, self.glue_stage = self.glue_stage, None

    def _close(self, frame: Frame) -> None:
        raw = self.raw
        path = frame.info.path
        parent = self.frames[-1]
        for stage in frame.touched:
            key = (stage, path)
            raw.calls[key] = raw.calls.get(key, 0) + 1
        for stage, peak in frame.peaks.items():
            key = (stage, path)
            if peak > raw.peaks.get(key, -1):
                raw.peaks[key] = peak
            if peak > parent.peaks.get(stage, -1):
                parent.peaks[stage] = peak
        if parent.stage is None:
            parent.touched.update(frame.touched)

    def _chain(self, info: ModuleInfo, inputs: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        """Was this list member fed by the previous member's output?  (for = yes, parfor = no)."""
        first_in = _first_tensor(inputs)
        if first_in is None:
            first_in = _first_tensor(kwargs.values())
        first_out = _first_tensor((output,))
        lpath = info.list_path
        assert lpath is not None
        prev = self._chain_prev.get(lpath)
        if prev is not None and first_in is not None:
            stage = self.frames[-1].stage or self.anchor or "other"
            pair = self.raw.chain.setdefault((stage, lpath), [0, 0])
            pair[0 if prev() is first_in.untyped_storage() else 1] += 1
        self._chain_prev[lpath] = weakref.ref(first_out.untyped_storage()) if first_out is not None else None

    # -- ops ----------------------------------------------------------------------------------------
    def record(
        self,
        name: str,
        rule: Rule,
        aliasing: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        out: Any,
        index: SchemaIndex,
    ) -> None:
        """Account one op: formula (if counted; ``index`` names its arguments), attribution, output liveness."""
        frame = self.frames[-1]
        stage = frame.stage
        if stage is None:
            stage = self.anchor or "other"
            frame.touched.add(stage)
        path = frame.info.path
        raw = self.raw
        sig = raw.sigs.get((stage, path))
        if sig is None:
            sig = raw.sigs[(stage, path)] = {}
        sig[name] = None
        if rule.bucket == "counted":
            category = "attention" if rule.name == "attention" else (frame.info.category or rule.category)
        else:
            category = rule.category if rule.bucket == "unsupported" else "data_movement"
        key = (stage, path, category, name)
        row = raw.table.get(key)
        if row is None:
            row = raw.table[key] = Counters()
            raw.op_buckets[name] = (rule.bucket, rule.name, rule.reason)
        row.kernels += 1
        out_kv = False
        if rule.handler is not None:
            io = self.io
            io.charge(rule.handler(OpCall(args, kwargs, out, index, self.kinds)))
            row.matmul_flops += io.mm
            row.matmul_flops_executed += io.mm_exec
            row.vector_flops += io.vec
            row.bytes_read += io.read_total
            row.bytes_written += io.written
            row.weight_bytes_read += io.w_read
            row.kv_bytes_read += io.kv_read
            row.kv_bytes_written += io.kv_written
            out_kv = io.out_kv
            if io.kv_target:
                self._kv_owner.setdefault(io.kv_target, (stage, path))
        if aliasing == FRESH and out is not None:
            if out_kv:
                self._mark_kv_output(out, (stage, path))
            elif isinstance(out, _Tensor):
                self._register(out, key)
            elif isinstance(out, tuple | list):
                for t in out:
                    if isinstance(t, _Tensor):
                        self._register(t, key)
            peaks = frame.peaks
            if self.live > peaks.get(stage, -1):
                peaks[stage] = self.live

    def _mark_kv_output(self, out: _Tensor, owner: tuple[str, str]) -> None:
        st = out.untyped_storage()
        self.kinds[id(st)] = KV
        self._held.append(st)
        self._kv_owner[id(st)] = owner

    def tracks(self, storage_id: int) -> bool:
        """Is the storage with this id a live activation this pass counts?"""
        return storage_id in self._producer

    def produced(self, t: _Tensor) -> tuple[int, OpKey] | None:
        """(bytes, producing op's key) of ``t``'s storage when it is a tracked activation, else None."""
        ref_id = self._producer.get(id(t.untyped_storage()))
        if ref_id is None:
            return None
        entry = self._alive[ref_id]
        return entry[1], entry[2]

    def alive_ids(self) -> frozenset[int]:
        """Ids of the tracked activations alive now (to tell afterwards whether any of them died)."""
        return frozenset(self._alive)

    def kv_marks(self) -> tuple[int, int]:
        """How many storages are marked (weights and KV) and how many KV storages have an owner."""
        return len(self.kinds), len(self._kv_owner)

    def chain_link(self, list_path: str) -> int:
        """What the next member of the list at ``list_path`` would be compared with: 0 nothing (first member of
        the pass), 1 a storage that has died, 2 a live storage."""
        prev = self._chain_prev.get(list_path)
        if prev is None:
            return 0
        return 1 if prev() is None else 2

    def set_chain_link(self, list_path: str, link: int) -> None:
        """Leave the list's link as :meth:`chain_link` would read it: 0 nothing, 1 a dead storage (what a replayed
        call leaves behind)."""
        self._chain_prev[list_path] = _dead_ref if link else None

    def track_output(self, t: _Tensor, key: OpKey) -> None:
        """Count ``t`` as a live activation made by the op ``key`` (a replayed call's output)."""
        self._register(t, key)

    def _register(self, t: _Tensor, key: OpKey) -> None:
        st = t.untyped_storage()
        sid = id(st)
        if sid in self._producer or sid in self.kinds:
            return
        n = st.nbytes()
        ref = weakref.ref(st, self._freed)
        self._alive[id(ref)] = (ref, n, key, sid)
        self._producer[sid] = id(ref)
        self.live += n

    def _freed(self, ref: Any) -> None:
        entry = self._alive.pop(id(ref), None)
        if entry is None:
            return
        self.live -= entry[1]
        if self._producer.get(entry[3]) == id(ref):
            del self._producer[entry[3]]


def _dead_ref() -> None:
    """A weak reference whose storage has died."""
    return None


def _first_tensor(values: Iterable[Any]) -> _Tensor | None:
    return next(iter(tensors_in(values)), None)
