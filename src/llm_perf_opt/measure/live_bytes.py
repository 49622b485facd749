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
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["LiveBytes"]


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
        self._finalizers: dict[int, Any] = {}

    # -- stages ---------------------------------------------------------------------------------
    def enter_stage(self, stage: str) -> None:
        """Close the current stage (if any) and start ``stage``; its peak starts at the live total now."""
        self._stage = stage
        self._raise_stage_peak()

    def leave_stage(self) -> None:
        """Close the current stage; live bytes until the next :meth:`enter_stage` belong to no stage."""
        self._stage = None

    def _raise_stage_peak(self) -> None:
        stage = self._stage
        if stage is not None and self.live > self.stage_peaks.get(stage, -1):
            self.stage_peaks[stage] = self.live

    # -- storages -------------------------------------------------------------------------------
    def track(self, tensors: Iterable[torch.Tensor]) -> None:
        """Count already existing tensors (a run's inputs) as live from now until they die."""
        for t in tensors:
            self._add(t.untyped_storage())

    def _add(self, storage: Any) -> None:
        sid = id(storage)
        n = int(storage.nbytes())
        known = self._sizes.get(sid)
        if known is None:
            self._sizes[sid] = n
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

    def _free(self, sid: int) -> None:
        n = self._sizes.pop(sid, 0)
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
                    self._add(st)
        return out

    def __exit__(self, *exc: Any) -> Any:
        result = super().__exit__(*exc)  # type: ignore[no-untyped-call]
        for fin in list(self._finalizers.values()):
            fin.detach()  # storages outliving the mode no longer call back into it
        self._finalizers.clear()
        self._sizes.clear()
        return result


def _storage(t: torch.Tensor) -> Any:
    """The untyped storage of a dense tensor (None for tensors without one)."""
    try:
        return t.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return None
