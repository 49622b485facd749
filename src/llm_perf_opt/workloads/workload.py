"""One resolved OCR workload: a page in a resolution mode, a prompt, a generation length, a batch.

Generation semantics (stated once, used by the tracer, the analytic model and the time model): with
``max_new_tokens = N`` the first new token comes out of the prefill pass over ``S`` tokens, then ``N - 1`` decode
steps follow.  Decode step ``i`` (1-based) runs with ``S + i - 1`` tokens already cached, appends one, and its
attention reads ``S + i`` keys.  After the last step the cache holds ``S + N - 1`` tokens (the last generated token
is never fed back).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from attrs import field, frozen

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import WorkloadError
from llm_perf_opt.workloads.crops import candidate_grids, crop_grid
from llm_perf_opt.workloads.modes import MODES, ResolutionMode, get_mode
from llm_perf_opt.workloads.tokens import (
    global_view_tokens,
    image_tokens,
    local_view_tokens,
    prefill_seq_len,
    token_geometry,
    view_grid_side,
)

__all__ = ["MAX_PAGE_SIDE_PX", "ProfileLike", "Workload"]

MAX_PAGE_SIDE_PX = 20_000
"""Largest accepted page side.  20000 px is 1.7 m at 300 dpi: a larger value is almost surely a unit mistake, and
the model sees at most a 9-crop grid whatever the page size, so nothing is lost by the limit."""


class ProfileLike(Protocol):
    """What :meth:`Workload.from_profile` reads from an ``OCRWorkloadProfile`` (seed fields plus extensions)."""

    @property
    def profile_id(self) -> str: ...
    @property
    def seq_len(self) -> int: ...
    @property
    def base_size(self) -> int: ...
    @property
    def image_size(self) -> int: ...
    @property
    def crop_mode(self) -> bool: ...
    @property
    def max_new_tokens(self) -> int: ...
    @property
    def num_pages(self) -> int: ...
    @property
    def page_width(self) -> int | None: ...
    @property
    def page_height(self) -> int | None: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def mode(self) -> str | None: ...


def _check_int(name: str, value: object, low: int, high: int | None = None, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        allowed = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
        raise WorkloadError(f"{name} must be {allowed}, got {value!r}{hint}")


def _page_side(instance: Any, attribute: Any, value: Any) -> None:
    name = getattr(attribute, "name", "page side").replace("_", " ")
    limit_hint = (
        f" px (a side above {MAX_PAGE_SIDE_PX} px is 1.7 m at 300 dpi: check the unit; "
        "the model resizes any page to at most 9 crops anyway)"
    )
    _check_int(name, value, 1, MAX_PAGE_SIDE_PX, limit_hint)


def _at_least(low: int) -> Callable[[Any, Any, Any], None]:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        _check_int(getattr(attribute, "name", "value").replace("_", " "), value, low)

    return check


@frozen(kw_only=True)
class Workload:
    """A resolved workload.  Build it with :meth:`create` or :meth:`from_profile`; everything else is derived."""

    mode: ResolutionMode = field(metadata={"help": "resolution mode"})
    page_width: int = field(validator=_page_side, metadata={"help": "page width (px)"})
    page_height: int = field(validator=_page_side, metadata={"help": "page height (px)"})
    prompt_tokens: int = field(default=9, validator=_at_least(0), metadata={"help": "text tokens after BOS"})
    max_new_tokens: int = field(default=512, validator=_at_least(1), metadata={"help": "N: tokens generated"})
    batch_size: int = field(default=1, validator=_at_least(1), metadata={"help": "sequences per forward"})
    num_pages: int = field(
        default=1, validator=_at_least(1), metadata={"help": "pages per document (one request each)"}
    )
    patch_size: int = field(default=16, validator=_at_least(1), metadata={"help": "SAM patch size p (px)"})
    downsample_ratio: int = field(default=4, validator=_at_least(1), metadata={"help": "SAM downsampling d"})
    profile_id: str | None = field(default=None, metadata={"help": "preset/profile this came from, if any"})
    text_only: bool = field(
        default=False,
        metadata={"help": "a request with no image: no vision or projector work, S = 1 BOS + prompt tokens"},
    )

    # -- named constructors -------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        *,
        mode: str | ResolutionMode,
        page: tuple[int, int],
        prompt_tokens: int = 9,
        max_new_tokens: int = 512,
        batch_size: int = 1,
        num_pages: int = 1,
        config: DeepseekOCRConfig | None = None,
        profile_id: str | None = None,
    ) -> Workload:
        """A workload for a ``page = (W, H)`` in ``mode`` (a name from ``MODES`` or a :class:`ResolutionMode`).

        ``config`` supplies the SAM patch size and downsampling ratio (default: the base config).
        Unknown mode -> :class:`UnknownIdError`; bad sizes or counts -> :class:`WorkloadError`.
        """
        resolved = get_mode(mode) if isinstance(mode, str) else mode
        if not (isinstance(page, tuple | list) and len(page) == 2):
            raise WorkloadError(f"page must be a (width, height) pair in px, got {page!r}")
        p, d = token_geometry(config)
        return cls(
            mode=resolved,
            page_width=page[0],
            page_height=page[1],
            prompt_tokens=prompt_tokens,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            num_pages=num_pages,
            patch_size=p,
            downsample_ratio=d,
            profile_id=profile_id,
        )

    @classmethod
    def from_profile(cls, profile: ProfileLike, *, config: DeepseekOCRConfig | None = None) -> Workload:
        """The workload an ``OCRWorkloadProfile`` describes; its ``seq_len`` must agree with its page.

        The mode is ``profile.mode`` (checked against base_size/image_size/crop_mode) or, without one, the named
        mode with those three values (a custom mode if none matches).  Without ``page_width``/``page_height`` the
        page is the smallest one whose crop grid gives ``profile.seq_len`` (``image_size*i`` x ``image_size*j``).
        """
        mode = _profile_mode(profile)
        width, height = profile.page_width, profile.page_height
        if width is None or height is None:
            if width is not None or height is not None:
                raise WorkloadError(
                    f"profile {profile.profile_id!r} sets only one of page_width/page_height; set both or neither"
                )
            width, height = _page_for_seq_len(profile, mode, config)
        workload = cls.create(
            mode=mode,
            page=(width, height),
            prompt_tokens=profile.prompt_tokens,
            max_new_tokens=profile.max_new_tokens,
            batch_size=profile.batch_size,
            num_pages=profile.num_pages,
            config=config,
            profile_id=profile.profile_id,
        )
        if workload.seq_len != profile.seq_len:
            raise WorkloadError(
                f"profile {profile.profile_id!r} has seq_len {profile.seq_len} but its page "
                f"{workload.page_width}x{workload.page_height} in mode {mode.name} gives {workload.seq_len} "
                f"(1 BOS + {workload.image_tokens} image tokens [grid {workload.grid[0]}x{workload.grid[1]}] + "
                f"{workload.prompt_tokens} prompt tokens); set seq_len to {workload.seq_len} or fix the page"
            )
        return workload

    # -- derived: views and tokens --------------------------------------------------------------
    @property
    def page(self) -> tuple[int, int]:
        """``(W, H)`` in px."""
        return (self.page_width, self.page_height)

    @property
    def grid(self) -> tuple[int, int]:
        """Crop grid ``(cols, rows)``; ``(1, 1)`` when there are no local crops (model-facts §3.1)."""
        if not self.mode.crop_mode:
            return (1, 1)
        return crop_grid(self.page_width, self.page_height, image_size=self.mode.image_size)

    @property
    def num_crops(self) -> int:
        """Local crops per page: ``cols*rows`` when the page is cut, else 0 (only the global view)."""
        cols, rows = self.grid
        return cols * rows if cols * rows > 1 else 0

    @property
    def global_view_size(self) -> int:
        """Side of the global view (px): ``base_size`` with crop_mode, ``image_size`` without."""
        return self.mode.global_view_size

    @property
    def crop_size(self) -> int:
        """Side of each local crop (px); 0 for a mode without crops."""
        return self.mode.crop_size

    @property
    def global_grid_side(self) -> int:
        """Token-grid side of the global view (16 at 1024 px)."""
        return view_grid_side(R=self.global_view_size, p=self.patch_size, d=self.downsample_ratio)

    @property
    def crop_grid_side(self) -> int:
        """Token-grid side of one local crop (10 at 640 px); 0 for a mode without crops."""
        if not self.mode.crop_mode:
            return 0
        return view_grid_side(R=self.crop_size, p=self.patch_size, d=self.downsample_ratio)

    @property
    def global_tokens(self) -> int:
        """Global-view tokens incl. newlines and the view separator (273 at 1024 px)."""
        return global_view_tokens(n_b=self.global_grid_side)

    @property
    def local_tokens(self) -> int:
        """Local-crop tokens incl. one newline per row of the re-tiled grid; 0 without crops."""
        cols, rows = self.grid
        return local_view_tokens(n_q=self.crop_grid_side, i=cols, j=rows)

    @property
    def image_tokens(self) -> int:
        """``N_img`` per page = global + local tokens (model-facts §3.2); 0 for a text-only request."""
        if self.text_only:
            return 0
        return image_tokens(mode=self.mode, grid=self.grid, p=self.patch_size, d=self.downsample_ratio)

    @property
    def seq_len(self) -> int:
        """Prefill length ``S = 1 + image_tokens + prompt_tokens`` per sequence."""
        return prefill_seq_len(N_img=self.image_tokens, T_prompt=self.prompt_tokens)

    # -- derived: generation -------------------------------------------------------------------
    @property
    def decode_steps(self) -> int:
        """``N - 1``: the first new token comes from prefill, each later one from one decode step."""
        return self.max_new_tokens - 1

    def cached_len_at_step(self, i: int) -> int:
        """Tokens already in the KV cache when decode step ``i`` (1-based) starts: ``S + i - 1``."""
        self._check_step(i)
        return self.seq_len + i - 1

    def kv_len_at_step(self, i: int) -> int:
        """Keys decode step ``i`` (1-based) attends over: ``S + i`` (the cache plus the token it appends)."""
        self._check_step(i)
        return self.seq_len + i

    @property
    def final_kv_len(self) -> int:
        """KV-cache length after generation: ``S + N - 1`` (the last generated token is never fed back)."""
        return self.seq_len + self.max_new_tokens - 1

    def _check_step(self, i: int) -> None:
        if isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= self.decode_steps:
            raise WorkloadError(
                f"decode step {i!r} is out of range; this workload has steps 1..{self.decode_steps} "
                f"(max_new_tokens {self.max_new_tokens} minus the prefill token)"
            )

    def describe(self) -> str:
        """One line for reports: mode, page, grid, tokens, S, N, batch."""
        cols, rows = self.grid
        if self.text_only:
            return (
                f"text only (no image), {self.prompt_tokens} prompt tokens, S={self.seq_len}, "
                f"N={self.max_new_tokens}, batch {self.batch_size}"
            )
        grid = f"grid {cols}x{rows}" if self.num_crops else "no crops (global view only)"
        return (
            f"{self.mode.name} {self.page_width}x{self.page_height} px, {grid}, "
            f"{self.image_tokens} image + {self.prompt_tokens} prompt tokens, S={self.seq_len}, "
            f"N={self.max_new_tokens}, batch {self.batch_size}"
        )


def _profile_mode(profile: ProfileLike) -> ResolutionMode:
    """The profile's mode: by name (must agree with its sizes) or by its sizes (a custom mode if none matches)."""
    wanted = (profile.base_size, profile.image_size, profile.crop_mode)
    if profile.mode is not None:
        mode = get_mode(profile.mode)
        if (mode.base_size, mode.image_size, mode.crop_mode) != wanted:
            raise WorkloadError(
                f"profile {profile.profile_id!r} names mode {mode.name} (base_size {mode.base_size}, image_size "
                f"{mode.image_size}, crop_mode {mode.crop_mode}) but sets base_size {wanted[0]}, image_size "
                f"{wanted[1]}, crop_mode {wanted[2]}; make them agree or drop the mode"
            )
        return mode
    for mode in MODES.values():
        if (mode.base_size, mode.image_size, mode.crop_mode) == wanted:
            return mode
    try:
        return ResolutionMode(
            name="custom", base_size=profile.base_size, image_size=profile.image_size, crop_mode=profile.crop_mode
        )
    except ValueError as exc:
        raise WorkloadError(f"profile {profile.profile_id!r}: {exc}") from None


def _page_for_seq_len(profile: ProfileLike, mode: ResolutionMode, config: DeepseekOCRConfig | None) -> tuple[int, int]:
    """A page (``image_size*i`` x ``image_size*j``) whose grid gives ``profile.seq_len``; error if none or several."""
    side = mode.image_size
    grids = [(1, 1), *candidate_grids()] if mode.crop_mode else [(1, 1)]
    p, d = token_geometry(config)
    matches = [
        g
        for g in grids
        if prefill_seq_len(N_img=image_tokens(mode=mode, grid=g, p=p, d=d), T_prompt=profile.prompt_tokens)
        == profile.seq_len
    ]
    if len(matches) != 1:
        possible = sorted(
            {
                prefill_seq_len(N_img=image_tokens(mode=mode, grid=g, p=p, d=d), T_prompt=profile.prompt_tokens)
                for g in grids
            }
        )
        found = "no crop grid" if not matches else f"{len(matches)} crop grids"
        raise WorkloadError(
            f"profile {profile.profile_id!r} has no page_width/page_height and seq_len {profile.seq_len} matches "
            f"{found} of mode {mode.name} (possible: {', '.join(map(str, possible))}); set the page size"
        )
    cols, rows = matches[0]
    return (side * cols, side * rows)
