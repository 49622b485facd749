"""Meta adapters for DeepSeek-OCR v1 remote code (model-facts §4, §5), applied only while a pass runs, undone after.

Keyed by class and method; each one checks its target before acting and refuses (:class:`AdapterRefusedError`,
one line) when the upstream code there is not what it was written for:

* ``DeepseekOCRModel.forward`` - item-from-workload: the ``torch.sum(<view>).item()`` image/crop presence checks
  are answered from the workload (a view the workload has: 1, the dummy crop tensor of a no-crop workload: 0); the
  reductions only feed those host-side checks and are not run (so not counted; the record says so).  Every
  ``torch.sum`` there must feed an ``.item()``, and at run time be the sum of a known input view.
* ``DeepseekOCRModel.forward`` - cuda-noop-on-meta: ``.cuda()`` on a meta tensor returns it unchanged.
* ``<any>.forward`` holding ``torch.autocast(..., enabled=False)`` (transformers 4.46 ``LlamaRotaryEmbedding``) -
  autocast-skipped-on-meta: the disabled-autocast block runs as a plain block on meta (an enabled autocast refuses).
* ``DeepseekV2MoE.moe_infer`` - moe-shape-only-dispatch: upstream's sorted dispatch with the per-expert slice sizes
  taken from the routing model instead of a host copy (``.cpu().numpy()``); the method's fingerprint must be one of
  :data:`REVIEWED_MOE_INFER`, because the replacement reproduces that code's op sequence.
"""

from __future__ import annotations

import ast
import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from llm_perf_opt.errors import TraceError, UserError
from llm_perf_opt.sources.deepseek_ocr_v1.moe import ExpertRouting
from llm_perf_opt.sources.upstream.fingerprint import (
    MethodSource,
    autocast_calls,
    is_torch_call,
    keyword_is_false,
    method_call_count,
    method_source,
    parameter_names,
)
from llm_perf_opt.sources.upstream.moe_dispatch import shape_only_moe_infer
from llm_perf_opt.sources.upstream.records import AdapterRecord

__all__ = ["REVIEWED_MOE_INFER", "AdapterRefusedError", "AdapterSet", "Presence", "UnadaptedSpotError"]

REVIEWED_MOE_INFER: Mapping[str, str] = {
    "4a8af13484584dfae028d443885d4e7cdc2e946f917a62b60f1e6d4e2946c713": (
        "deepseek-ai/DeepSeek-OCR modeling_deepseekv2.py (git blob ff008470, third_party/deepseek-ai--DeepSeek-OCR)"
    ),
    "3fbafc3bffa71f137d0db476524912efbdc625074aa106885df824c3054974c0": (
        "llm-perf-opt test fixture tests/fixtures/upstream_snapshot/modeling_fixture.py"
    ),
}
"""AST fingerprints of ``DeepseekV2MoE.moe_infer`` versions whose op sequence the shape-only dispatch reproduces."""

_MOE_PARAMS = ("self", "x", "topk_ids", "topk_weight")
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


class AdapterRefusedError(UserError):
    """Upstream code changed at a spot an adapter handles: tracing it would be wrong, so nothing is traced."""


class UnadaptedSpotError(TraceError):
    """A data-dependent operation on meta that no adapter covers."""


def _qualified(owner: type, method: str) -> str:
    module = owner.__module__
    if module.startswith("transformers_modules."):
        module = module.rsplit(".", 1)[-1]
    return f"{module}.{owner.__qualname__}.{method}"


def _defining_class(cls: type, method: str) -> type | None:
    return next((c for c in cls.__mro__ if method in c.__dict__), None)


def _refuse(target: str, source: MethodSource, what: str) -> AdapterRefusedError:
    return AdapterRefusedError(
        f"upstream {target} changed at a spot a meta adapter handles: {what}; tracing it could be silently wrong, "
        f"so it was refused (method AST sha256 {source.sha256}); fix: review the new code and update "
        "llm_perf_opt.sources.upstream.adapters, or trace a reviewed revision"
    )


class _Adapter:
    """One applied adapter (mutable use counter; :meth:`record` freezes it)."""

    def __init__(self, kind: str, owner: type, method: str, description: str, source: MethodSource, reviewed: str):
        self.kind = kind
        self.owner = owner
        self.method = method
        self.description = description
        self.source = source
        self.reviewed = reviewed
        self.uses = 0

    def record(self) -> AdapterRecord:
        return AdapterRecord(
            kind=self.kind,
            target=_qualified(self.owner, self.method),
            description=self.description,
            source_sha256=self.source.sha256,
            reviewed_as=self.reviewed,
            uses=self.uses,
        )


class Presence:
    """The workload's answer for one input view, and the meta scalar that stands for its ``torch.sum``."""

    def __init__(self, present: bool, scalar: Tensor) -> None:
        self.present = present
        self.scalar = scalar


class _PresenceMode(TorchFunctionMode):
    """Inside ``DeepseekOCRModel.forward``: answer the presence checks, make meta ``.cuda()`` a no-op.

    ``torch.sum(view)`` of an input view returns that view's prepared scalar without running (the reduction only
    feeds the host-side check), and ``.item()`` on that scalar returns the workload's answer.
    """

    def __init__(self, answers: Mapping[int, Presence], item: _Adapter | None, cuda: _Adapter | None) -> None:
        super().__init__()
        self.answers = answers
        self.scalars = {id(p.scalar): p for p in answers.values()}
        self.item = item
        self.cuda = cuda

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        first = args[0] if args else None
        if func is Tensor.item and isinstance(first, Tensor) and first.is_meta and self.item is not None:
            return self._answer(first)
        if func is Tensor.cuda and isinstance(first, Tensor) and first.is_meta and self.cuda is not None:
            self.cuda.uses += 1
            return first
        if (func is torch.sum or func is Tensor.sum) and len(args) == 1 and not kwargs and id(first) in self.answers:
            presence = self.answers[id(first)]
            return presence.scalar
        return func(*args, **kwargs)

    def _answer(self, tensor: Tensor) -> float:
        presence = self.scalars.get(id(tensor))
        if presence is None or presence.scalar is not tensor:
            where = _qualified(self.item.owner, "forward") if self.item else "?"
            raise UnadaptedSpotError(
                f".item() on a meta tensor in {where} that is not the sum of an input view; upstream added a "
                "data-dependent check no adapter answers"
            )
        assert self.item is not None
        self.item.uses += 1
        return 1.0 if presence.present else 0.0


class _MetaSafeAutocast:
    """``torch.autocast`` stand-in: a disabled autocast on the meta device is a plain block."""

    def __init__(self, real: Any, adapter: _Adapter) -> None:
        self.real = real
        self.adapter = adapter

    def __call__(self, device_type: str, *args: Any, **kwargs: Any) -> Any:
        if device_type == "meta" and kwargs.get("enabled", True) is False:
            self.adapter.uses += 1
            return contextlib.nullcontext()
        return self.real(device_type, *args, **kwargs)


class AdapterSet:
    """The adapters a model needs, found and checked once; :meth:`active` applies them around one pass."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.item: _Adapter | None = None
        self.cuda: _Adapter | None = None
        self.rope: list[_Adapter] = []
        self.moe: _Adapter | None = None
        self.moe_layers: dict[int, int] = {}
        classes = {type(m) for m in model.modules()}
        for cls in sorted(classes, key=lambda c: c.__qualname__):
            if cls.__name__ == "DeepseekOCRModel":
                self._presence(cls)
            if cls.__name__ == "DeepseekV2MoE":
                self._moe(cls)
            self._autocast(cls)

    # -- discovery and checks ------------------------------------------------------------------
    def _presence(self, cls: type) -> None:
        owner = _defining_class(cls, "forward")
        if owner is None:
            return
        src = method_source(owner, "forward")
        target = _qualified(owner, "forward")
        items = method_call_count(src, "item")
        for call in items:
            receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
            if receiver is None or not is_torch_call(receiver, "sum"):
                raise _refuse(target, src, "an .item() call is no longer on torch.sum(<image view>)")
        sums = [c for c in src.calls() if is_torch_call(c, "sum")]
        if len(sums) != len(items):
            raise _refuse(target, src, f"it has {len(sums)} torch.sum calls but {len(items)} .item() presence checks")
        if items:
            self.item = _Adapter(
                "item-from-workload",
                owner,
                "forward",
                f"{len(items)} torch.sum(<view>).item() presence checks answered from the workload (the reductions "
                "feeding them are not run, so not counted)",
                src,
                "pattern: every torch.sum(...) feeds an .item()",
            )
        cudas = method_call_count(src, "cuda")
        if cudas:
            self.cuda = _Adapter(
                "cuda-noop-on-meta",
                owner,
                "forward",
                f"{len(cudas)} .cuda() call(s) return meta tensors unchanged",
                src,
                "pattern: .cuda() calls",
            )

    def _autocast(self, cls: type) -> None:
        owner = _defining_class(cls, "forward")
        if owner is None or owner.__module__.startswith("torch."):
            return
        try:
            src = method_source(owner, "forward")
        except TraceError:
            return
        calls = autocast_calls(src)
        if not calls or any(r.owner is owner for r in self.rope):
            return
        if not all(keyword_is_false(c, "enabled") for c in calls):
            raise _refuse(_qualified(owner, "forward"), src, "a torch.autocast block is no longer enabled=False")
        self.rope.append(
            _Adapter(
                "autocast-skipped-on-meta",
                owner,
                "forward",
                "torch.autocast(..., enabled=False) runs as a plain block on meta",
                src,
                "pattern: torch.autocast(enabled=False)",
            )
        )

    def _moe(self, cls: type) -> None:
        owner = _defining_class(cls, "moe_infer")
        if owner is None:
            return
        src = method_source(owner, "moe_infer")
        target = _qualified(owner, "moe_infer")
        if parameter_names(owner, "moe_infer") != _MOE_PARAMS:
            raise _refuse(target, src, f"its parameters are no longer {', '.join(_MOE_PARAMS)}")
        reviewed = REVIEWED_MOE_INFER.get(src.sha256)
        if reviewed is None:
            raise _refuse(target, src, "the method is not one of the reviewed versions the shape-only dispatch mirrors")
        for path, module in self.model.named_modules():
            if type(module) is not cls:
                continue
            match = _LAYER.search(path + ".")
            if match is None or getattr(module, "ep_size", 1) != 1:
                raise _refuse(target, src, f"MoE module {path!r} has no layer index or uses expert parallelism")
            self.moe_layers[id(module)] = int(match.group(1))
        self.moe = _Adapter(
            "moe-shape-only-dispatch",
            owner,
            "moe_infer",
            "per-expert slice sizes from the routing model instead of a host copy of the gate's counts",
            src,
            reviewed,
        )

    # -- application ---------------------------------------------------------------------------
    def records(self) -> tuple[AdapterRecord, ...]:
        found = [a for a in (self.item, self.cuda, *self.rope, self.moe) if a is not None]
        return tuple(a.record() for a in found)

    @contextlib.contextmanager
    def active(self, *, answers: Mapping[int, Presence], routing: ExpertRouting) -> Iterator[None]:
        """Patch the target methods for the ``with`` body; the originals are restored however it exits."""
        patches: list[tuple[type, str, Any]] = []

        def patch(owner: type, name: str, replacement: Callable[..., Any]) -> None:
            patches.append((owner, name, owner.__dict__[name]))
            setattr(owner, name, replacement)

        try:
            if self.item is not None or self.cuda is not None:
                owner = (self.item or self.cuda).owner  # type: ignore[union-attr]
                patch(owner, "forward", self._presence_forward(owner.__dict__["forward"], answers))
            for adapter in self.rope:
                patch(adapter.owner, "forward", self._autocast_forward(adapter.owner.__dict__["forward"], adapter))
            if self.moe is not None:
                patch(self.moe.owner, "moe_infer", self._moe_infer(routing))
            yield
        finally:
            for owner, name, original in reversed(patches):
                setattr(owner, name, original)

    def _presence_forward(self, original: Callable[..., Any], answers: Mapping[int, Presence]) -> Callable[..., Any]:
        item, cuda = self.item, self.cuda

        def forward(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
            with _PresenceMode(answers, item, cuda):
                return original(module, *args, **kwargs)

        return forward

    def _autocast_forward(self, original: Callable[..., Any], adapter: _Adapter) -> Callable[..., Any]:
        def forward(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
            real = torch.autocast
            torch.autocast = _MetaSafeAutocast(real, adapter)  # type: ignore[misc,assignment]
            try:
                return original(module, *args, **kwargs)
            finally:
                torch.autocast = real  # type: ignore[misc]

        return forward

    def _moe_infer(self, routing: ExpertRouting) -> Callable[..., Any]:
        layers, adapter = self.moe_layers, self.moe
        assert adapter is not None

        def moe_infer(module: nn.Module, x: Tensor, topk_ids: Tensor, topk_weight: Tensor) -> Tensor:
            adapter.uses += 1
            return shape_only_moe_infer(module, x, topk_ids, topk_weight, routing=routing, layer_idx=layers[id(module)])

        return moe_infer
