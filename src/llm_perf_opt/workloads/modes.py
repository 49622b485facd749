"""DeepSeek-OCR resolution modes (model-facts §3.1-§3.2).

A mode fixes the side of the global view (``base_size``), the side of the local crops (``image_size``) and whether
the page is cut into crops at all (``crop_mode``).  Upstream semantics: with ``crop_mode=False`` the single view is
rendered at ``image_size`` (every upstream no-crop mode has ``base_size == image_size``); with ``crop_mode=True`` the
global view is rendered at ``base_size`` and the local crops at ``image_size``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from attrs import field, frozen

from llm_perf_opt.errors import UnknownIdError

__all__ = ["MODES", "ResolutionMode", "get_mode"]


def _positive(instance: object, attribute: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        name = getattr(attribute, "name", "?")
        raise ValueError(f"ResolutionMode.{name} must be a positive integer (px), got {value!r}")


@frozen(kw_only=True)
class ResolutionMode:
    """One resolution mode: view sizes in pixels and whether local crops are cut."""

    name: str = field(metadata={"help": "mode name (tiny, small, base, large, gundam, gundam-m, or custom)"})
    base_size: int = field(validator=_positive, metadata={"help": "global view side when crop_mode is on (px)"})
    image_size: int = field(
        validator=_positive,
        metadata={"help": "local crop side (crop_mode) or the single view side (no crop_mode) (px)"},
    )
    crop_mode: bool = field(metadata={"help": "cut pages larger than image_size into a grid of local crops"})

    @property
    def global_view_size(self) -> int:
        """Side of the one global view: ``base_size`` with crops, ``image_size`` without (px)."""
        return self.base_size if self.crop_mode else self.image_size

    @property
    def crop_size(self) -> int:
        """Side of each local crop (px); 0 for a mode that never cuts crops."""
        return self.image_size if self.crop_mode else 0


_ALL_MODES = (
    ResolutionMode(name="tiny", base_size=512, image_size=512, crop_mode=False),
    ResolutionMode(name="small", base_size=640, image_size=640, crop_mode=False),
    ResolutionMode(name="base", base_size=1024, image_size=1024, crop_mode=False),
    ResolutionMode(name="large", base_size=1280, image_size=1280, crop_mode=False),
    ResolutionMode(name="gundam", base_size=1024, image_size=640, crop_mode=True),
    ResolutionMode(name="gundam-m", base_size=1280, image_size=1024, crop_mode=True),
)

MODES: Mapping[str, ResolutionMode] = MappingProxyType({mode.name: mode for mode in _ALL_MODES})
"""The upstream modes by name (read-only)."""


def get_mode(name: str) -> ResolutionMode:
    """The named mode; an unknown name raises :class:`UnknownIdError` listing the known ones."""
    try:
        return MODES[name]
    except KeyError:
        raise UnknownIdError("resolution mode", name, MODES) from None
