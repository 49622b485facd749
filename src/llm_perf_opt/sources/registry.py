"""Model sources: a name -> how to build its module tree and its inputs.

Built in: ``deepseek-ocr-v1-base`` (upstream sizes) and ``deepseek-ocr-v1-tiny`` (same structure, small widths).
Other kinds of source (``hf-snapshot:PATH``, ``hf:REPO@REV``, ``deepseek-ocr-2``) plug in with
:func:`register_source` (a fixed name) or :func:`register_scheme` (a ``scheme:argument`` family).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from attrs import field, frozen

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import UnknownIdError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from llm_perf_opt.sources.deepseek_ocr_v1 import WorkloadInputs
    from llm_perf_opt.sources.deepseek_ocr_v1.driver import BuiltinDriver
    from llm_perf_opt.sources.deepseek_ocr_v1.inputs import WorkloadLike
    from llm_perf_opt.sources.deepseek_ocr_v1.moe import ExpertRouting

__all__ = [
    "DEFAULT_MODEL_SOURCE",
    "ModelSource",
    "known_model_sources",
    "register_scheme",
    "register_source",
    "resolve_model_source",
]

DEFAULT_MODEL_SOURCE = "deepseek-ocr-v1-base"


class ModelBuilder(Protocol):
    def __call__(
        self, config: DeepseekOCRConfig, *, device: torch.device | str, dtype: torch.dtype, attn_implementation: str
    ) -> nn.Module: ...


class InputBuilder(Protocol):
    def __call__(
        self, config: DeepseekOCRConfig, workload: WorkloadLike, *, device: torch.device | str, dtype: torch.dtype
    ) -> WorkloadInputs: ...


def build_model(
    config: DeepseekOCRConfig, *, device: torch.device | str, dtype: torch.dtype, attn_implementation: str
) -> nn.Module:
    """The built-in DeepSeek-OCR v1 tree (:func:`llm_perf_opt.sources.deepseek_ocr_v1.build_model`)."""
    # the module tree needs torch; resolving a source (name, config) must not import it, so that a cached trace
    # lazy: is analysed without torch
    from llm_perf_opt.sources.deepseek_ocr_v1 import build_model as build

    return build(config, device=device, dtype=dtype, attn_implementation=attn_implementation)


def build_inputs(
    config: DeepseekOCRConfig, workload: WorkloadLike, *, device: torch.device | str, dtype: torch.dtype
) -> WorkloadInputs:
    """The built-in v1 inputs (:func:`llm_perf_opt.sources.deepseek_ocr_v1.build_inputs`)."""
    # lazy: torch, as build_model
    from llm_perf_opt.sources.deepseek_ocr_v1 import build_inputs as build

    return build(config, workload, device=device, dtype=dtype)


def _bfloat16() -> Any:
    # lazy: torch, as build_model
    import torch

    return torch.bfloat16


@frozen(kw_only=True)
class ModelSource:
    """A resolved model source: its name, its config, and how to build the tree and a workload's inputs.

    Resolving one imports no torch; :meth:`build` and :meth:`make_inputs` do."""

    kind: ClassVar[str] = "builtin-v1"
    """builtin-v1 | upstream-v1 | deepseek-ocr-2 (subclasses say theirs)."""

    name: str = field(metadata={"help": "the name it was resolved from"})
    config: DeepseekOCRConfig = field(metadata={"help": "model configuration"})
    description: str = field(default="", metadata={"help": "one line for listings"})
    builder: ModelBuilder = field(default=build_model, repr=False, metadata={"help": "builds the module tree"})
    input_builder: InputBuilder = field(default=build_inputs, repr=False, metadata={"help": "builds inputs"})

    def build(
        self,
        *,
        device: torch.device | str = "meta",
        dtype: torch.dtype | None = None,
        attn_implementation: str = "eager",
    ) -> nn.Module:
        """The module tree (meta by default: no weights, no allocation; ``dtype`` default bfloat16)."""
        return self.builder(
            self.config, device=device, dtype=dtype or _bfloat16(), attn_implementation=attn_implementation
        )

    def make_inputs(
        self, workload: WorkloadLike, *, device: torch.device | str = "meta", dtype: torch.dtype | None = None
    ) -> WorkloadInputs:
        """Prefill and decode-step inputs for ``workload`` (see :mod:`llm_perf_opt.sources.deepseek_ocr_v1.inputs`)."""
        return self.input_builder(self.config, workload, device=device, dtype=dtype or _bfloat16())

    def make_driver(self, model: nn.Module, workload: WorkloadLike, routing: ExpertRouting) -> BuiltinDriver:
        """The driver the tracer runs: ``model`` (built by :meth:`build`) on ``workload``'s meta inputs."""
        # lazy: torch, as build_model
        from llm_perf_opt.sources.deepseek_ocr_v1.driver import BuiltinDriver

        return BuiltinDriver(model, self.make_inputs(workload), routing)

    def pure_modules(self) -> frozenset[type]:
        """Module classes whose calls depend only on their structure and arguments (a trace may replay a repeated
        call): the built-in v1 classes.  An upstream tree is made of other classes, so nothing of it is replayed."""
        # lazy: torch, as build_model
        from llm_perf_opt.sources.deepseek_ocr_v1.pure import PURE_MODULES

        return PURE_MODULES


_SOURCES: dict[str, Callable[[], ModelSource]] = {}
_SCHEMES: dict[str, Callable[[str], ModelSource]] = {}


def register_source(name: str, factory: Callable[[], ModelSource]) -> None:
    """Make ``name`` resolvable; ``factory`` runs on each resolution (keep it cheap)."""
    _SOURCES[name] = factory


def register_scheme(scheme: str, resolver: Callable[[str], ModelSource]) -> None:
    """Make ``scheme:ARGUMENT`` resolvable; ``resolver`` gets the whole name and raises a UserError if it is bad."""
    _SCHEMES[scheme] = resolver


def known_model_sources() -> list[str]:
    """Registered names, then ``scheme:...`` patterns, sorted."""
    return sorted(_SOURCES) + sorted(f"{scheme}:..." for scheme in _SCHEMES)


def resolve_model_source(name: str) -> ModelSource:
    """The source called ``name``; an unknown name is an :class:`UnknownIdError` listing the known ones."""
    factory = _SOURCES.get(name)
    if factory is not None:
        return factory()
    scheme, sep, _ = name.partition(":")
    if sep and scheme in _SCHEMES:
        return _SCHEMES[scheme](name)
    raise UnknownIdError("model source", name, known_model_sources())


def _builtin(name: str, config: Callable[[], DeepseekOCRConfig], description: str) -> Callable[[], ModelSource]:
    def factory() -> ModelSource:
        return ModelSource(name=name, config=config(), description=description)

    return factory


register_source(
    "deepseek-ocr-v1-base",
    _builtin("deepseek-ocr-v1-base", DeepseekOCRConfig.base, "built-in DeepSeek-OCR v1 (upstream sizes, 3.34 B)"),
)
register_source(
    "deepseek-ocr-v1-tiny",
    _builtin("deepseek-ocr-v1-tiny", DeepseekOCRConfig.tiny, "built-in DeepSeek-OCR v1 structure, small widths"),
)

# -- Upstream sources (issue 7): hf-snapshot:PATH, hf:REPO@REVISION, deepseek-ocr-2 -----------------------------------
