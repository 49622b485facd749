"""Stage rules (docs/architecture.md "Module ids"): which stage a module call and an op belong to.

A call inside a vision anchor (``model.sam_model``, ``model.vision_model``) is ``vision``; inside the projector
anchor ``projector``; any other call is ``prefill`` during the prefill pass and ``decode`` during decode steps.
Ops run directly in a *container* (a module that is an ancestor of an anchor: the root, ``model``) take the
stage of the most recently entered anchor in the current pass (``other`` before any anchor was entered).
"""

from __future__ import annotations

from attrs import field, frozen

__all__ = ["CONTAINER", "LANGUAGE", "PLAIN", "PROJECTOR", "VISION", "StageRules", "stage_kind"]

VISION = 0
PROJECTOR = 1
LANGUAGE = 2
"""An anchor of the language model: its stage is the pass's (prefill or decode)."""
PLAIN = 3
"""Not an anchor and not a container: the pass's stage, without moving the anchor."""
CONTAINER = 4
"""An ancestor of an anchor: its own ops take the stage of the most recent anchor."""


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in prefixes)


@frozen(kw_only=True)
class StageRules:
    """Path prefixes of the stage anchors (``named_modules()`` paths of the traced root)."""

    vision: tuple[str, ...] = field(default=("model.sam_model", "model.vision_model"))
    projector: tuple[str, ...] = field(default=("model.projector",))
    language: tuple[str, ...] = field(default=("model.embed_tokens", "model.layers", "model.norm", "lm_head"))

    @property
    def anchors(self) -> tuple[str, ...]:
        return self.vision + self.projector + self.language


def stage_kind(path: str, rules: StageRules) -> int:
    """VISION, PROJECTOR, LANGUAGE, CONTAINER or PLAIN for the module at ``path``."""
    if _under(path, rules.vision):
        return VISION
    if _under(path, rules.projector):
        return PROJECTOR
    if _under(path, rules.language):
        return LANGUAGE
    if any(path == "" or anchor.startswith(path + ".") for anchor in rules.anchors):
        return CONTAINER
    return PLAIN
