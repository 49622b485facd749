"""The closed vocabularies of the contracts (stages, repetitions, statuses, ...) and their value tuples."""

from __future__ import annotations

from typing import Literal, TypeAlias

__all__ = [
    "ACCEPTED_STATUSES",
    "ATTENTION_KINDS",
    "DOC_KINDS",
    "REPETITIONS",
    "REPORT_STATUSES",
    "STAGES",
    "VISION_BACKBONES",
    "AcceptedStatus",
    "AttentionKind",
    "DocKind",
    "ParamValue",
    "Repetition",
    "ReportStatus",
    "Stage",
    "VisionBackbone",
]

Stage: TypeAlias = Literal["vision", "projector", "prefill", "decode", "other"]
Repetition: TypeAlias = Literal["none", "for", "parfor"]
AcceptedStatus: TypeAlias = Literal["queued", "running"]
ReportStatus: TypeAlias = Literal["published", "queued", "running", "failed"]
VisionBackbone: TypeAlias = Literal["sam_vit_b", "clip_vit_l", "other"]
DocKind: TypeAlias = Literal["text_heavy", "mixed_layout", "image_rich", "synthetic"]
AttentionKind: TypeAlias = Literal["flash", "eager"]
#: A value of ``AnalyticModuleNode.constructor_params``: a JSON scalar or a list of integers.
ParamValue: TypeAlias = int | float | str | bool | list[int] | None

STAGES: tuple[Stage, ...] = ("vision", "projector", "prefill", "decode", "other")
REPETITIONS: tuple[Repetition, ...] = ("none", "for", "parfor")
ACCEPTED_STATUSES: tuple[AcceptedStatus, ...] = ("queued", "running")
REPORT_STATUSES: tuple[ReportStatus, ...] = ("published", "queued", "running", "failed")
VISION_BACKBONES: tuple[VisionBackbone, ...] = ("sam_vit_b", "clip_vit_l", "other")
DOC_KINDS: tuple[DocKind, ...] = ("text_heavy", "mixed_layout", "image_rich", "synthetic")
ATTENTION_KINDS: tuple[AttentionKind, ...] = ("flash", "eager")
