"""Replay of repeated module calls: a call that was counted once is not run again, its counts are added again.

A trace runs the same subtree many times with the same shapes: 64 routed experts per MoE layer (one
``DeepseekV2MLP`` each, 704 calls in a decode step at batch 11 or more), the encoder blocks of every row of a batch,
each MoE layer in every decode step after the first.
On the meta device what such a call adds to a pass - op rows, calls, peaks, signatures, the output it leaves alive -
depends only on the subtree's structure and its arguments' layouts, *if* its forward consults nothing else.  That
last condition cannot be seen from outside (DeepSeek-OCR-2's fused experts look their layer up in a routing table
held by the driver), so the model source vouches for it: only classes in its ``pure_modules()`` are replayed (the
built-in v1 lists its blocks, MLPs and projector; upstream trees list nothing).

The first call with a given *structure key* is run and recorded as a :class:`Tape` (relative to the module's path and
to the live level at entry); every later call with the same key, of the same module or of a structurally identical
one, adds the tape under its own path, returns fresh tensors of the recorded layouts and skips ``forward``.
Structure key: the subtree's *fingerprint* (types, child names, parameter and buffer layouts, plain attributes by
value - less those its class names in ``replay_ignores`` as not deciding its ops, such as a CLIP block's
``layer_id`` - any other attribute by identity: the experts share one config object) with the call's stage and its
arguments (tensor shape, stride, dtype, device, storage sharing, whether the storage is a weight, a KV cache or a
tracked activation; plain values by value, other objects by identity: the routing model handed to the MoE), and what
the module's own ``replay_key(*args, **kwargs)`` returns when its class has one: what an ignored attribute decided,
worked out for the call (the MoE ignores its layer index and keys its slice sizes, the routing model's counts for its
layer: the layers whose counts agree share one tape).

Replayed subtrees (:func:`replayable_paths`): a pure module with children, every module inside pure or torch's own,
one stage kind and no container, no hooks of their own.  A list inside (the MoE's experts) keeps its for/parfor
chain: what its first member is compared with is part of the key, the chain counts are on the tape, and the call
must leave the last member's output dead.  A recording is refused (the call runs, nothing is kept) when the call
wrote KV memory, changed the stage anchor, freed a tensor that was alive before it, left anything alive besides its
outputs or a list's last output, or returned anything but fresh tensors (or one tuple or list of them) made inside
it.  Tests compare traces with and without replay on every node.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from attrs import frozen
from torch import nn
from torch.utils._python_dispatch import _disable_current_modes

from llm_perf_opt.core.counts import Counters
from llm_perf_opt.tracer.index import ModelIndex
from llm_perf_opt.tracer.ops.io import dense_bytes
from llm_perf_opt.tracer.raw import OpKey, RawTrace

__all__ = ["CallReplay", "Tape", "fingerprint", "replayable_paths"]

_PLAIN = (bool, int, float, str, type(None))
_MODULE_KEYS = frozenset(vars(nn.Module())) | {"forward"}
"""Attributes every module has (hooks, parameter and child dicts, ...) and the replay's own ``forward`` patch: not
part of a fingerprint."""


class TraceState(Protocol):
    """What the replay reads and adds to (``llm_perf_opt.tracer.state.TraceState``, which drives it)."""

    raw: RawTrace
    frames: list[Any]
    index: Any
    live: int
    anchor: str | None
    kinds: dict[int, int]

    def tracks(self, storage_id: int) -> bool: ...

    def produced(self, t: torch.Tensor) -> tuple[int, OpKey] | None: ...

    def alive_ids(self) -> frozenset[int]: ...

    def kv_marks(self) -> tuple[int, int]: ...

    def chain_link(self, list_path: str) -> int: ...

    def set_chain_link(self, list_path: str, link: int) -> None: ...

    def track_output(self, t: torch.Tensor, key: OpKey) -> None: ...


@frozen
class _Out:
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device
    producer: tuple[str, str, str]
    """(path suffix, category, op) of the op that made it."""


@frozen
class Tape:
    """What one call added to its pass, relative to the module's path and to the live level at its entry."""

    rows: tuple[tuple[str, str, str, Counters], ...]
    """(path suffix, category, op, counters) of every op row of the subtree."""
    calls: tuple[tuple[str, int], ...]
    """(path suffix, calls) of the subtree's modules below the replayed one (its own call is counted by its hook)."""
    peaks: tuple[tuple[str, int], ...]
    """(path suffix, peak above the entry level) of the modules below; ``""``: the replayed module's own frame."""
    sigs: tuple[tuple[str, tuple[str, ...]], ...]
    """(path suffix, events in order) of the subtree, the replayed module included."""
    buckets: tuple[tuple[str, tuple[str, str, str]], ...]
    chain: tuple[tuple[str, int, int, int], ...]
    """(list path suffix, member calls fed by the previous member's output, calls that were not, what the list's
    next member would be compared with afterwards: 0 nothing, 1 a dead storage) of every list inside."""
    outputs: tuple[_Out, ...]
    container: type | None
    """None: the call returned one tensor; else the tuple or list type holding ``outputs``."""


def replayable_paths(
    index: ModelIndex, kinds: Mapping[str, int], container_kind: int, pure: frozenset[type]
) -> dict[str, nn.Module]:
    """Modules whose calls a tape can describe: of a ``pure`` class with children, every module inside pure or
    torch's own, one stage kind and no container, no hooks."""
    subtree: dict[str, list[str]] = {path: [] for path, _ in index.entries}
    for path, _ in index.entries:
        parts = path.split(".") if path else []
        for cut in range(1, len(parts)):
            subtree[".".join(parts[:cut])].append(path)
    by_path = dict(index.entries)
    out: dict[str, nn.Module] = {}
    for path, module in index.entries:
        inner = subtree[path]
        if not path or not inner or kinds[path] == container_kind or type(module) not in pure:
            continue
        if not all(_pure(by_path[p], pure) for p in inner):
            continue
        if any(kinds[p] != kinds[path] for p in inner):
            continue
        if any(_has_hooks(m) for m in (module, *(by_path[p] for p in inner))):
            continue
        out[path] = module
    return out


def _pure(module: nn.Module, pure: frozenset[type]) -> bool:
    return type(module) in pure or type(module).__module__.startswith("torch.nn.")


def _has_hooks(module: nn.Module) -> bool:
    return bool(
        module._forward_hooks or module._forward_pre_hooks or module._backward_hooks or "forward" in vars(module)
    )


def fingerprint(module: nn.Module, parts: dict[int, Hashable] | None = None) -> tuple[tuple[str, Hashable], ...]:
    """Structure of ``module``'s subtree: two modules with equal fingerprints make the same ops on the same inputs.
    ``parts`` keeps each module's own part by id (a trace works out a module inside several pure ones once)."""
    parts = {} if parts is None else parts
    return tuple((name, _own_part(m, parts)) for name, m in module.named_modules())


def _own_part(module: nn.Module, parts: dict[int, Hashable]) -> Hashable:
    """The module's type, mode, parameter and buffer layouts and plain attributes (others by identity)."""
    known = parts.get(id(module))
    if known is not None:
        return known
    m = module
    params = tuple((n, tuple(p.shape), tuple(p.stride()), p.dtype) for n, p in m.named_parameters(recurse=False))
    buffers = tuple((n, tuple(b.shape), tuple(b.stride()), b.dtype) for n, b in m.named_buffers(recurse=False))
    ignored = getattr(type(m), "replay_ignores", ())
    plain = tuple(
        (k, v if isinstance(v, _PLAIN) else ("id", id(v)))
        for k, v in sorted(vars(m).items())
        if k not in _MODULE_KEYS and k not in ignored
    )
    part = parts[id(module)] = (type(m), m.training, params, buffers, plain)
    return part


class CallReplay:
    """Tapes of one trace (kept across its passes) and the ``forward`` patches that use them."""

    def __init__(self, state: TraceState, modules: Mapping[str, nn.Module], list_paths: Collection[str]) -> None:
        self.state = state
        self.modules = dict(modules)
        self.list_paths = frozenset(list_paths)
        self._prints: dict[str, Hashable] = {}
        self._parts: dict[int, Hashable] = {}
        self._subtrees: dict[str, tuple[str, ...]] = {}
        self._lists: dict[str, tuple[str, ...]] = {}
        self.tapes: dict[Hashable, Tape | None] = {}
        self.replayed = 0

    @contextmanager
    def installed(self) -> Iterator[CallReplay]:
        """Patch the replayable modules' ``forward`` for the ``with`` body."""
        patched: list[nn.Module] = []
        try:
            for path, module in self.modules.items():
                module.forward = self._forward(path, module.forward)
                patched.append(module)
            yield self
        finally:
            for module in patched:
                del module.forward

    def _forward(self, path: str, original: Any) -> Any:
        own_key = getattr(self.modules[path], "replay_key", None)

        def forward(*args: Any, **kwargs: Any) -> Any:
            state = self.state
            frame = state.frames[-1] if state.frames else None
            if frame is None or frame.info.path != path or frame.stage is None:
                return original(*args, **kwargs)
            paths, lists = self._paths(path)
            links = tuple(state.chain_link(lpath) for lpath in lists)
            args_key = (_arg_key(state, args), _arg_key(state, kwargs))
            extra = own_key(*args, **kwargs) if own_key is not None else None
            key = (self._prints[path], frame.stage, links, *args_key, extra)
            tape = self.tapes.get(key)
            if tape is not None:
                self.replayed += 1
                return _play(state, tape, path, frame.stage)
            if key in self.tapes or 2 in links:
                return original(*args, **kwargs)
            out, tape = _record(state, path, frame.stage, paths, lists, original, args, kwargs)
            self.tapes[key] = tape
            return out

        return forward

    def _paths(self, path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The subtree's module paths and its list paths (worked out on the module's first call, with its
        fingerprint)."""
        paths = self._subtrees.get(path)
        if paths is None:
            module = self.modules[path]
            print_ = self._prints[path] = fingerprint(module, self._parts)
            paths = self._subtrees[path] = tuple(f"{path}.{name}" if name else path for name, _ in print_)
            self._lists[path] = tuple(p for p in paths if p in self.list_paths)
        return paths, self._lists[path]


class CallTapes:
    """Tapes of repeated calls inside a module (:func:`llm_perf_opt.core.repeats.repeatable`; kept across a trace's
    passes): the hook :func:`~llm_perf_opt.core.repeats.repeating_calls` installs for a pass.  A call is keyed by the
    module it runs in, the stage, the function, the caller's key and its arguments' layouts (as a module call's are,
    a bound method's object by identity among them: the module); the first is
    run and recorded as a module call is - its own peak measured from its entry, the peak its module reached before
    it kept aside - and a later one adds the tape at the live level it starts at.  The refusals are a module call's
    (a call that leaves anything alive besides fresh outputs, frees what was alive, writes KV, ... runs every time)."""

    def __init__(self, state: TraceState) -> None:
        self.state = state
        self.tapes: dict[Hashable, Tape | None] = {}
        self.replayed = 0
        self._subtrees: dict[str, tuple[str, ...]] = {}

    def _subtree(self, path: str) -> tuple[str, ...]:
        """The paths of the module at ``path`` and of every module inside it (its activation, say)."""
        found = self._subtrees.get(path)
        if found is None:
            inside = path + "."
            entries = self.state.index.entries
            found = self._subtrees[path] = tuple(p for p, _ in entries if p == path or p.startswith(inside))
        return found

    def __call__(self, call: Callable[..., Any], args: tuple[Any, ...], key: Hashable) -> Any:
        state = self.state
        frame = state.frames[-1] if state.frames else None
        if frame is None or frame.stage is None:
            return call(*args)
        path, stage = frame.info.path, frame.stage
        full = (path, stage, getattr(call, "__func__", call), key, _arg_key(state, args))
        tape = self.tapes.get(full)
        if tape is not None:
            self.replayed += 1
            return _play(state, tape, path, stage)
        if full in self.tapes:
            return call(*args)
        before = frame.peaks.get(stage)
        frame.peaks[stage] = state.live  # (the call's own peak, from its entry: what its tape holds)
        try:
            out, self.tapes[full] = _record(state, path, stage, self._subtree(path), (), call, args, {})
        finally:
            own = frame.peaks[stage]
            frame.peaks[stage] = own if before is None else max(before, own)
        return out


def _arg_key(state: TraceState, values: Any) -> Hashable:
    """Positional (a tuple) or keyword (a dict) arguments as the structure key sees them."""
    items = sorted(values.items()) if isinstance(values, dict) else enumerate(values)
    storages: dict[int, int] = {}
    out: list[Hashable] = []
    for name, value in items:
        out.append((name, _value_key(state, value, storages)))
    return tuple(out)


def _value_key(state: TraceState, value: Any, storages: dict[int, int]) -> Hashable:
    if isinstance(value, torch.Tensor):
        sid = id(value.untyped_storage())
        shared = storages.setdefault(sid, len(storages))
        kind = state.kinds.get(sid, -1)
        tracked = state.tracks(sid)
        return ("t", tuple(value.shape), tuple(value.stride()), value.dtype, value.device.type, shared, kind, tracked)
    if isinstance(value, tuple | list):
        return (type(value).__name__, tuple(_value_key(state, v, storages) for v in value))
    if isinstance(value, _PLAIN):
        return ("v", type(value).__name__, value)
    return ("o", id(value))


def _record(
    state: TraceState,
    path: str,
    stage: str,
    paths: tuple[str, ...],
    lists: tuple[str, ...],
    original: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[Any, Tape | None]:
    """Run the call, counting it into a pass of its own that is then merged into the real one; its tape when every
    refusal check passes (module docstring), else None."""
    frame, outer = state.frames[-1], state.raw
    entry, anchor = state.live, state.anchor
    alive_before = state.alive_ids()
    kv_before = state.kv_marks()
    state.raw = inner = RawTrace()
    try:
        out = original(*args, **kwargs)
    finally:
        state.raw = outer
        outer.merge(inner)
    if (
        state.frames[-1] is not frame
        or state.anchor != anchor
        or state.kv_marks() != kv_before
        or not alive_before <= state.alive_ids()
        or any(state.chain_link(lpath) == 2 for lpath in lists)
    ):
        return out, None
    outputs = _outputs(state, out, path, entry)
    if outputs is None:
        return out, None
    return out, _tape(state, inner, path, stage, paths, lists, entry, outputs, out)


def _outputs(state: TraceState, out: Any, path: str, entry: int) -> tuple[_Out, ...] | None:
    """The outputs' layouts and producers, if they are fresh tensors made in the call and all it left alive."""
    tensors = [out] if isinstance(out, torch.Tensor) else list(out) if type(out) in (tuple, list) else None
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        return None
    found: list[_Out] = []
    seen: set[int] = set()
    total = 0
    for t in tensors:
        sid = id(t.untyped_storage())
        made = state.produced(t)
        if made is None or sid in seen or t.storage_offset() != 0:
            return None
        seen.add(sid)
        n, (_, kpath, cat, op) = made
        if n != dense_bytes(t) or not (kpath == path or kpath.startswith(path + ".")):
            return None
        total += n
        found.append(_Out(tuple(t.shape), tuple(t.stride()), t.dtype, t.device, (kpath[len(path) :], cat, op)))
    if state.live - entry != total:
        return None
    return tuple(found)


def _tape(
    state: TraceState,
    inner: RawTrace,
    path: str,
    stage: str,
    paths: tuple[str, ...],
    lists: tuple[str, ...],
    entry: int,
    outputs: tuple[_Out, ...],
    out: Any,
) -> Tape | None:
    """``inner`` (what the call added) relative to ``path`` and the entry level; None when it holds anything outside
    the subtree or its stage, or KV."""
    inside = set(paths)
    keys = [*inner.sigs, *inner.calls, *inner.peaks, *inner.chain, *((k[0], k[1]) for k in inner.table)]
    if inner.kv_held or any(key[0] != stage or key[1] not in inside for key in keys):
        return None
    cut = len(path)
    return Tape(
        rows=tuple((k[1][cut:], k[2], k[3], row.copy()) for k, row in inner.table.items()),
        calls=tuple((p[cut:], n) for (_, p), n in inner.calls.items()),
        peaks=(
            ("", state.frames[-1].peaks[stage] - entry),
            *((p[cut:], level - entry) for (_, p), level in inner.peaks.items()),
        ),
        sigs=tuple((p[cut:], tuple(events)) for (_, p), events in inner.sigs.items()),
        buckets=tuple(sorted(inner.op_buckets.items())),
        chain=tuple(
            (lpath[cut:], *inner.chain.get((stage, lpath), (0, 0)), state.chain_link(lpath)) for lpath in lists
        ),
        outputs=outputs,
        container=None if isinstance(out, torch.Tensor) else type(out),
    )


def _play(state: TraceState, tape: Tape, path: str, stage: str) -> Any:
    """Add ``tape`` under ``path`` at the current live level; return fresh outputs of the recorded layouts."""
    raw, entry = state.raw, state.live
    table = raw.table
    for suffix, cat, op, row in tape.rows:
        key = (stage, path + suffix, cat, op)
        mine = table.get(key)
        if mine is None:
            table[key] = row.copy()
        else:
            mine.add(row)
    for suffix, n in tape.calls:
        key2 = (stage, path + suffix)
        raw.calls[key2] = raw.calls.get(key2, 0) + n
    frame = state.frames[-1]
    for suffix, rel in tape.peaks:
        level = entry + rel
        if not suffix:
            if level > frame.peaks.get(stage, -1):
                frame.peaks[stage] = level
            continue
        key2 = (stage, path + suffix)
        if level > raw.peaks.get(key2, -1):
            raw.peaks[key2] = level
    for suffix, events in tape.sigs:
        raw.sigs.setdefault((stage, path + suffix), {}).update(dict.fromkeys(events))
    for op, bucket in tape.buckets:
        raw.op_buckets.setdefault(op, bucket)
    for suffix, fed, unfed, link in tape.chain:
        if fed or unfed:
            pair = raw.chain.setdefault((stage, path + suffix), [0, 0])
            pair[0] += fed
            pair[1] += unfed
        state.set_chain_link(path + suffix, link)
    made = []
    with _disable_current_modes():
        for o in tape.outputs:
            t = torch.empty_strided(o.shape, o.stride, dtype=o.dtype, device=o.device)
            state.track_output(t, (stage, path + o.producer[0], o.producer[1], o.producer[2]))
            made.append(t)
    return made[0] if tape.container is None else tape.container(made)
