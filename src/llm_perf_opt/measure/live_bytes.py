"""Live tensor-storage bytes over a real run, exactly, and their peak per stage (torch).

:class:`LiveBytes` is a ``TorchDispatchMode``: it sees the outputs of every aten op that runs while it is active.
An output whose storage is not the storage of one of the op's inputs is a new allocation (an aten op either
allocates its outputs or returns/writes into one of its arguments: in-place ops, ``out=`` variants and views share
an input's storage).  Each new storage is counted with ``storage.nbytes()`` - what the allocator was asked for -
and a ``weakref.finalize`` on the untyped storage subtracts it again when its last tensor dies (torch keeps one
Python object per storage, so the finalizer fires when the storage is freed, not when one wrapper goes away).
The peak of the running sum is the peak of live tensor storage: the same rule the tracer applies to meta tensors.

Not counted: storages that existed before the mode was entered (parameters, buffers, anything resident), unless
handed to :meth:`LiveBytes.track` (a run's inputs); memory a kernel allocates inside itself and frees before it
returns (CPU scratch, cuBLAS workspaces) - it never becomes a tensor; allocator rounding and caching (see
``llm_perf_opt.perf.memory`` for those on a GPU).

:meth:`LiveBytes.enter_stage` splits the run into stages: the peak of a stage is the highest live total seen
between its start and the next boundary (a stage entered several times keeps its highest).

Which tensors make a peak: every counted storage is labelled with the op that produced it (``aten.mm.default``, or
the label given to :meth:`LiveBytes.track`); between :meth:`LiveBytes.watch_start` and :meth:`LiveBytes.watch_stop`
of a name the live set is snapshotted whenever the total reaches a new high for that name (:attr:`LiveBytes.watched`:
the high and the bytes per label there).  :func:`live_sets_at_peaks` uses it to explain module peaks (on meta
tensors too): which ops made the tensors that were alive.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from attrs import field, frozen
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["LiveBytes", "LiveSet", "live_set_at_peak", "live_sets_at_peaks"]


class LiveBytes(TorchDispatchMode):
    """Running total and peak of live tensor-storage bytes created while the mode is active.

    ``with LiveBytes() as meter: ...`` then ``meter.peak`` (bytes), ``meter.live`` (bytes still alive) and
    ``meter.stage_peaks`` (after :meth:`enter_stage` calls).
    """

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.live = 0
        self.peak = 0
        self.stage_peaks: dict[str, int] = {}
        self._stage: str | None = None
        self._sizes: dict[int, int] = {}  # id(storage) -> bytes counted
        self._labels: dict[int, str] = {}  # id(storage) -> producing op
        self._finalizers: dict[int, Any] = {}
        self._open: dict[str, int] = {}  # watched name -> open calls
        self.watched: dict[str, tuple[int, dict[str, int]]] = {}  # name -> (highest live, bytes per label there)

    # -- stages ---------------------------------------------------------------------------------
    def enter_stage(self, stage: str) -> None:
        """Close the current stage (if any) and start ``stage``; its peak starts at the live total now."""
        self._stage = stage
        self._raise_stage_peak()

    def leave_stage(self) -> None:
        """Close the current stage; live bytes until the next :meth:`enter_stage` belong to no stage."""
        self._stage = None

    def watch_start(self, name: str = "") -> None:
        """Snapshot the live set at every new high while ``name`` is open (the high carries over between spans)."""
        self._open[name] = self._open.get(name, 0) + 1
        self._snapshot()

    def watch_stop(self, name: str = "") -> None:
        left = self._open.get(name, 0) - 1
        if left > 0:
            self._open[name] = left
        else:
            self._open.pop(name, None)

    def _snapshot(self) -> None:
        by_label: dict[str, int] | None = None
        for name in self._open:
            if self.live > self.watched.get(name, (-1, {}))[0]:
                if by_label is None:
                    counts: Counter[str] = Counter()
                    for sid, n in self._sizes.items():
                        counts[self._labels[sid]] += n
                    by_label = dict(counts)
                self.watched[name] = (self.live, by_label)

    def _raise_stage_peak(self) -> None:
        stage = self._stage
        if stage is not None and self.live > self.stage_peaks.get(stage, -1):
            self.stage_peaks[stage] = self.live

    # -- storages -------------------------------------------------------------------------------
    def track(self, tensors: Iterable[torch.Tensor], *, label: str = "<input>") -> None:
        """Count already existing tensors (a run's inputs) as live from now until they die."""
        for t in tensors:
            self._add(t.untyped_storage(), label)

    def _add(self, storage: Any, label: str) -> None:
        sid = id(storage)
        n = int(storage.nbytes())
        known = self._sizes.get(sid)
        if known is None:
            self._sizes[sid] = n
            self._labels[sid] = label
            self._finalizers[sid] = weakref.finalize(storage, self._free, sid)
            self._grow(n)
        elif known != n:  # resized in place (resize_): count the new size
            self._sizes[sid] = n
            self._grow(n - known)

    def _grow(self, n: int) -> None:
        self.live += n
        if self.live > self.peak:
            self.peak = self.live
        self._raise_stage_peak()
        if self._open:
            self._snapshot()

    def _free(self, sid: int) -> None:
        n = self._sizes.pop(sid, 0)
        self._labels.pop(sid, None)
        self._finalizers.pop(sid, None)
        self.live -= n

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = {id(_storage(t)) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                st = _storage(t)
                if st is not None and (id(st) not in inputs or id(st) in self._sizes):
                    self._add(st, str(func))
        return out

    def __exit__(self, *exc: Any) -> Any:
        result = super().__exit__(*exc)  # type: ignore[no-untyped-call]
        for fin in list(self._finalizers.values()):
            fin.detach()  # storages outliving the mode no longer call back into it
        self._finalizers.clear()
        self._sizes.clear()
        self._labels.clear()
        return result


@frozen(kw_only=True)
class LiveSet:
    """The live tensor storage at the highest point inside one module's calls, by producing op."""

    module_path: str = field(metadata={"help": "named_modules() path watched"})
    peak_bytes: int = field(metadata={"help": "highest live total while the module ran (-1: never called)"})
    by_op: dict[str, int] = field(metadata={"help": "producing op (or '<input>') -> live bytes at that point"})

    def difference(self, other: LiveSet) -> dict[str, int]:
        """``other - self`` per producing op, zero entries dropped: which tensors make ``other``'s peak higher."""
        ops = sorted(set(self.by_op) | set(other.by_op))
        delta = {op: other.by_op.get(op, 0) - self.by_op.get(op, 0) for op in ops}
        return {op: d for op, d in delta.items() if d}


def live_sets_at_peaks(
    model: nn.Module, run: Callable[[], Any], module_paths: Iterable[str], *, inputs: Sequence[torch.Tensor] = ()
) -> dict[str, LiveSet]:
    """Run ``run()`` (one forward, inputs bound) under :class:`LiveBytes` with ``inputs`` counted as live, and
    return, per module path, the live set at the highest point while that module ran (over all its calls; a
    module never called has ``peak_bytes == -1``).

    Storages that existed before (parameters, a preallocated KV cache) are not counted, as in the tracer.
    """
    paths = list(dict.fromkeys(module_paths))
    meter = LiveBytes()
    handles = []
    for path in paths:
        module = model.get_submodule(path)
        handles.append(module.register_forward_pre_hook(lambda *_, name=path: meter.watch_start(name)))
        handles.append(module.register_forward_hook(lambda *_, name=path: meter.watch_stop(name)))
    try:
        with torch.no_grad(), meter:
            meter.track(inputs)
            run()
    finally:
        for handle in handles:
            handle.remove()
    out = {}
    for path in paths:
        peak, by_op = meter.watched.get(path, (-1, {}))
        out[path] = LiveSet(module_path=path, peak_bytes=peak, by_op=by_op)
    return out


def live_set_at_peak(
    model: nn.Module, run: Callable[[], Any], module_path: str, *, inputs: Sequence[torch.Tensor] = ()
) -> LiveSet:
    """:func:`live_sets_at_peaks` for one module."""
    return live_sets_at_peaks(model, run, [module_path], inputs=inputs)[module_path]


def _storage(t: torch.Tensor) -> Any:
    """The untyped storage of a dense tensor (None for tensors without one)."""
    try:
        return t.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return None
