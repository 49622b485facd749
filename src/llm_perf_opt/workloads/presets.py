"""Named workload profiles (``OCRWorkloadProfile`` contract instances).

Each preset is written as a mode, a page, a generation length and a document kind; its ``seq_len`` is derived from
them (never typed in), so a preset cannot contradict the crop rule or the token formulas.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from attrs import evolve, frozen

from llm_perf_opt.contracts.analytic import OCRWorkloadProfile
from llm_perf_opt.contracts.vocab import DocKind
from llm_perf_opt.errors import UnknownIdError
from llm_perf_opt.workloads.ocr2 import Ocr2Workload
from llm_perf_opt.workloads.workload import Workload

__all__ = ["DEFAULT_PRESET_ID", "PRESETS", "get_preset", "preset_workload", "profile_from_workload"]

DEFAULT_PRESET_ID = "dsocr-standard-v1"


def profile_from_workload(
    workload: Workload | Ocr2Workload, *, profile_id: str, description: str, doc_kind: DocKind
) -> OCRWorkloadProfile:
    """Contract view of ``workload``: seed fields (``seq_len`` derived) plus page/prompt/batch/mode extensions."""
    return OCRWorkloadProfile(
        profile_id=profile_id,
        description=description,
        seq_len=workload.seq_len,
        base_size=workload.mode.base_size,
        image_size=workload.mode.image_size,
        crop_mode=workload.mode.crop_mode,
        max_new_tokens=workload.max_new_tokens,
        doc_kind=doc_kind,
        num_pages=workload.num_pages,
        page_width=workload.page_width,
        page_height=workload.page_height,
        prompt_tokens=workload.prompt_tokens,
        batch_size=workload.batch_size,
        mode=workload.mode.name,
    )


@frozen(kw_only=True)
class _Spec:
    profile_id: str
    description: str
    mode: str
    page: tuple[int, int]
    max_new_tokens: int
    doc_kind: DocKind
    num_pages: int = 1

    def build(self) -> OCRWorkloadProfile:
        workload = Workload.create(
            mode=self.mode, page=self.page, max_new_tokens=self.max_new_tokens, num_pages=self.num_pages
        )
        return profile_from_workload(
            workload, profile_id=self.profile_id, description=self.description, doc_kind=self.doc_kind
        )


_SPECS = (
    _Spec(
        profile_id=DEFAULT_PRESET_ID,
        description=(
            "Reference workload (the llm-perf-opt torchinfo run): a 1024x1024 page in Gundam mode, 2x2 crops of "
            "640 px plus a 1024 px global view, 693 image tokens, S=703, 512 new tokens"
        ),
        mode="gundam",
        page=(1024, 1024),
        max_new_tokens=512,
        doc_kind="mixed_layout",
    ),
    _Spec(
        profile_id="dsocr-a4-text-v1",
        description=(
            "Dense text page: A4 portrait scanned at 150 dpi (1240x1754) in Gundam mode, 2x3 crops, "
            "903 image tokens, S=913, 1024 new tokens"
        ),
        mode="gundam",
        page=(1240, 1754),
        max_new_tokens=1024,
        doc_kind="text_heavy",
    ),
    _Spec(
        profile_id="dsocr-slide-v1",
        description=(
            "Presentation slide or screenshot: 1920x1080 in Gundam mode, 4x2 crops, 1093 image tokens, S=1103, "
            "512 new tokens"
        ),
        mode="gundam",
        page=(1920, 1080),
        max_new_tokens=512,
        doc_kind="image_rich",
    ),
    _Spec(
        profile_id="dsocr-a4-300dpi-gundam-m-v1",
        description=(
            "A4 portrait at 300 dpi (2480x3508) in Gundam-M mode, 2x3 crops of 1024 px plus a 1280 px global view, "
            "2005 image tokens, S=2015, 1024 new tokens"
        ),
        mode="gundam-m",
        page=(2480, 3508),
        max_new_tokens=1024,
        doc_kind="text_heavy",
    ),
    _Spec(
        profile_id="dsocr-base-v1",
        description=(
            "A 1024x1024 page in Base mode: one 1024 px view, no crops, 273 image tokens, S=283, 512 new tokens"
        ),
        mode="base",
        page=(1024, 1024),
        max_new_tokens=512,
        doc_kind="mixed_layout",
    ),
    _Spec(
        profile_id="dsocr-tiny-v1",
        description=(
            "Smallest workload: a 512x512 page in Tiny mode, one 512 px view, 73 image tokens, S=83, "
            "256 new tokens; for quick sweeps and tests"
        ),
        mode="tiny",
        page=(512, 512),
        max_new_tokens=256,
        doc_kind="synthetic",
    ),
)

PRESETS: Mapping[str, OCRWorkloadProfile] = MappingProxyType({spec.profile_id: spec.build() for spec in _SPECS})
"""Preset profiles by id (read-only mapping; use :func:`get_preset` for a copy you may change)."""


def get_preset(profile_id: str) -> OCRWorkloadProfile:
    """A copy of the preset ``profile_id``; an unknown id raises :class:`UnknownIdError` listing the known ones."""
    try:
        return evolve(PRESETS[profile_id])
    except KeyError:
        raise UnknownIdError("workload profile", profile_id, PRESETS) from None


def preset_workload(profile_id: str) -> Workload:
    """The resolved :class:`Workload` of a preset."""
    return Workload.from_profile(get_preset(profile_id))
