"""Grouping of repeated ModuleList members into one node, and node paths with index sets.

Candidates are found structurally: two members are alike when their *structure key* is equal (class, own
parameter and buffer shapes and dtypes, non-index scalar attributes, children's keys, recursively).  The trace
then confirms them: their *trace signatures* must be equal too (the ops and child calls each module ran, in
first-occurrence order, recursively with nested lists seen through their own grouping), so a block that branches
on config at forward time is never merged with one that does not.  A member never called in the stage carries
no evidence: it joins its structural class when that class has exactly one traced signature.

Repetition: ``for`` when the members' calls feed each other (a member's input is the previous member's output:
layers, blocks), ``parfor`` otherwise (experts).  Index sets are written ``{a..b}`` when contiguous and
``{a,b,c}`` otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any

import torch
from attrs import define, field
from torch import nn

from llm_perf_opt.contracts.vocab import ParamValue
from llm_perf_opt.core.paths import index_label
from llm_perf_opt.tracer.index import ModelIndex
from llm_perf_opt.tracer.raw import RawTrace

__all__ = [
    "GroupInfo",
    "StageGrouping",
    "Structure",
    "constructor_params",
    "group_stage",
    "index_label",
    "qualified_class_name",
]

_INDEX_NAMES = re.compile(r"(^|_)(idx|index|id|layer_id|layer_number|block_id)$")


def qualified_class_name(module: nn.Module) -> str:
    """``module.Class`` without a ``transformers_modules.<repo>.<hash>.`` prefix."""
    cls = type(module)
    mod = cls.__module__
    if mod.startswith("transformers_modules."):
        mod = mod.rsplit(".", 1)[-1]
    return f"{mod}.{cls.__qualname__}"


def _param_value(value: Any) -> ParamValue | None:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, tuple | list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    if isinstance(value, torch.Size):
        return list(value)
    return None


def constructor_params(module: nn.Module) -> dict[str, ParamValue]:
    """Public scalar attributes of the module (in/out features, kernel, heads, window size, top-k, ...), minus
    ``training`` and index attributes (``layer_idx`` and the like), which differ between repeated members."""
    out: dict[str, ParamValue] = {}
    for name, value in vars(module).items():
        if name.startswith("_") or name == "training" or _INDEX_NAMES.search(name):
            continue
        converted = _param_value(value)
        if converted is not None or value is None:
            out[name] = converted
    if isinstance(module, nn.ModuleList):
        out["length"] = len(module)
    return dict(sorted(out.items()))


class _Interner:
    """Hash-consing of nested keys to small ints, so deep trees compare in O(1)."""

    def __init__(self) -> None:
        self._ids: dict[Hashable, int] = {}

    def __call__(self, key: Hashable) -> int:
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self._ids)
        return found


class Structure:
    """Structure keys of all modules of a root (stage-independent, computed once)."""

    def __init__(self, root: nn.Module) -> None:
        self._intern = _Interner()
        self._keys: dict[int, int] = {}
        self.key(root)

    def key(self, module: nn.Module) -> int:
        found = self._keys.get(id(module))
        if found is not None:
            return found
        params = tuple((n, tuple(p.shape), str(p.dtype)) for n, p in module.named_parameters(recurse=False))
        buffers = tuple((n, tuple(b.shape), str(b.dtype)) for n, b in module.named_buffers(recurse=False))
        attrs = tuple((k, repr(v)) for k, v in constructor_params(module).items())
        children = tuple(
            (name if not isinstance(module, nn.ModuleList) else "#", self.key(child))
            for name, child in module.named_children()
        )
        key = self._intern((qualified_class_name(module), params, buffers, attrs, children))
        self._keys[id(module)] = key
        return key


@define
class GroupInfo:
    """One group of ModuleList members in one stage."""

    label: str
    members: tuple[int, ...]
    repetition: str
    """none (a single member), for, parfor"""


@define
class StageGrouping:
    """Groups of one stage: ``(list path, index) -> GroupInfo`` and the path patterns they induce."""

    stage: str
    groups: dict[tuple[str, int], GroupInfo] = field(factory=dict)
    _cache: dict[str, tuple[str, ...]] = field(factory=dict)

    def pattern(self, path: str) -> tuple[str, ...]:
        """Path components with grouped indices replaced by their index set ('' -> ())."""
        found = self._cache.get(path)
        if found is not None:
            return found
        if not path:
            result: tuple[str, ...] = ()
        else:
            parent, _, name = path.rpartition(".")
            head = self.pattern(parent)
            group = self.groups.get((parent, int(name))) if name.isdigit() else None
            result = (*head, group.label if group is not None else name)
        self._cache[path] = result
        return result


def _repetition(raw: RawTrace, stage: str, list_path: str) -> str:
    chained, independent = raw.chain.get((stage, list_path), (0, 0))
    return "parfor" if independent > chained else "for"


class _Grouper:
    def __init__(self, index: ModelIndex, structure: Structure, raw: RawTrace, stage: str) -> None:
        self.index = index
        self.structure = structure
        self.raw = raw
        self.stage = stage
        self.intern = _Interner()
        self.result = StageGrouping(stage=stage)

    def tsig(self, path: str, module: nn.Module) -> int | None:
        key = (self.stage, path)
        own = self.raw.sigs.get(key)
        active = own is not None or key in self.raw.calls
        children: list[tuple[str, int | None]] = []
        for name, cpath, child in self.index.children[path]:
            view = self.list_view(cpath, child) if isinstance(child, nn.ModuleList) else self.tsig(cpath, child)
            active = active or view is not None
            children.append((name, view))
        if not active:
            return None
        return self.intern((tuple(own or ()), tuple(children)))

    def list_view(self, lpath: str, lst: nn.ModuleList) -> int | None:
        members = [(int(name), child) for name, _, child in self.index.children[lpath]]
        sigs = {i: self.tsig(f"{lpath}.{i}", child) for i, child in members}
        if all(s is None for s in sigs.values()):
            return None
        by_struct: dict[int, list[int]] = {}
        for i, child in members:
            by_struct.setdefault(self.structure.key(child), []).append(i)
        view: list[tuple[str, int, int | None]] = []
        repetition = _repetition(self.raw, self.stage, lpath)
        for skey, indices in by_struct.items():
            for part, sig in _partition(indices, sigs):
                label = index_label(part)
                info = GroupInfo(label=label, members=tuple(part), repetition=repetition if len(part) > 1 else "none")
                for i in part:
                    self.result.groups[(lpath, i)] = info
                view.append((label, skey, sig))
        return self.intern(tuple(sorted(view)))


def _partition(indices: list[int], sigs: dict[int, int | None]) -> list[tuple[list[int], int | None]]:
    """Split structurally equal members by trace signature; uncalled ones join a lone traced class."""
    traced: dict[int, list[int]] = {}
    uncalled: list[int] = []
    for i in indices:
        sig = sigs[i]
        if sig is None:
            uncalled.append(i)
        else:
            traced.setdefault(sig, []).append(i)
    if len(traced) == 1:
        ((sig, part),) = traced.items()
        return [(sorted(part + uncalled), sig)]
    parts: list[tuple[list[int], int | None]] = [(part, sig) for sig, part in traced.items()]
    if uncalled:
        parts.append((uncalled, None))
    return parts


def group_stage(index: ModelIndex, structure: Structure, raw: RawTrace, stage: str) -> StageGrouping:
    """Group the ModuleList members of the indexed root for one stage of ``raw``."""
    grouper = _Grouper(index, structure, raw, stage)
    grouper.tsig("", index.root)
    return grouper.result
