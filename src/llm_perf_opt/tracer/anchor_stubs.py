"""Vision and projector anchors replaced by empty outputs, for the language pass of a batch extrapolation.

While the small-batch points are traced, :meth:`AnchorStubs.recording` notes what every call of a vision or
projector anchor module returned (shape, stride, dtype, device), keyed by the anchor's path and its arguments'
shapes.  In the pass at the target batch, :meth:`AnchorStubs.replaying` makes each such call return fresh empty
tensors of the recorded layout instead of running the encoder (built with every dispatch mode off, so they are
not ops).  The hooks still see the call, so stage attribution of the container code around it is unchanged; the
counters of the vision and projector stages of that pass are dropped and come from the extrapolation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import _disable_current_modes

__all__ = ["AnchorStubs", "StubMissError"]

_Spec = Any  # ("t", shape, stride, dtype, device) | ("seq", type, (spec, ...)) | ("none",)


class StubMissError(Exception):
    """An anchor call at the target batch was never seen (or returned something that cannot be replayed)."""


def _arg_key(value: Any) -> Hashable:
    if isinstance(value, torch.Tensor):
        return ("t", tuple(value.shape), tuple(value.stride()), str(value.dtype), value.device.type)
    if isinstance(value, tuple | list):
        return (type(value).__name__, tuple(_arg_key(v) for v in value))
    if value is None or isinstance(value, bool | int | float | str):
        return ("v", value)
    return ("o", type(value).__qualname__)


def _spec(value: Any) -> _Spec:
    if isinstance(value, torch.Tensor):
        return ("t", tuple(value.shape), tuple(value.stride()), value.dtype, value.device)
    if isinstance(value, tuple | list) and type(value) in (tuple, list):
        return ("seq", type(value), tuple(_spec(v) for v in value))
    if value is None:
        return ("none",)
    raise StubMissError(f"an anchor returned a {type(value).__qualname__}, which cannot be replayed")


def _build(spec: _Spec) -> Any:
    if spec[0] == "t":
        _, shape, stride, dtype, device = spec
        return torch.empty_strided(shape, stride, dtype=dtype, device=device)
    if spec[0] == "seq":
        return spec[1](_build(s) for s in spec[2])
    return None


class AnchorStubs:
    """Record the outputs of ``modules`` (path -> anchor module) during traced passes; replay them later."""

    def __init__(self, modules: Mapping[str, nn.Module]) -> None:
        self.modules = dict(modules)
        self.specs: dict[Hashable, _Spec] = {}
        self.failure: str | None = None
        self.replayed = 0

    @staticmethod
    def _key(path: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Hashable:
        return (path, _arg_key(args), tuple(sorted((k, _arg_key(v)) for k, v in kwargs.items())))

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Note every anchor call's output layout while the ``with`` body runs."""
        handles = []
        for path, module in self.modules.items():

            def hook(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any, path: str = path) -> None:
                key = self._key(path, args, kwargs)
                try:
                    spec = _spec(out)
                except StubMissError as exc:
                    self.failure = self.failure or f"{path}: {exc}"
                    return
                if self.specs.setdefault(key, spec) != spec:
                    self.failure = self.failure or f"{path} returned different layouts for the same arguments"

            handles.append(module.register_forward_hook(hook, with_kwargs=True))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    @contextlib.contextmanager
    def replaying(self) -> Iterator[None]:
        """Anchor calls return empty tensors of the recorded layout (:class:`StubMissError` for an unseen call)."""
        if self.failure is not None:
            raise StubMissError(self.failure)
        patched = []
        for path, module in self.modules.items():

            def forward(*args: Any, path: str = path, **kwargs: Any) -> Any:
                spec = self.specs.get(self._key(path, args, kwargs))
                if spec is None:
                    raise StubMissError(f"{path} was called with arguments no small-batch point saw")
                self.replayed += 1
                with _disable_current_modes():
                    return _build(spec)

            patched.append((module, module.__dict__.get("forward")))
            module.forward = forward
        try:
            yield
        finally:
            for module, own in patched:
                if own is None:
                    del module.forward
                else:
                    module.forward = own
