"""Exact model inputs for a workload, on any device (meta included): prefill tensors, decode steps, the KV cache.

Token layout of the prefill (model-facts §3.1, §3.6): position 0 is BOS, then the image block (all ``image_token_id``;
the model fills it with local grid, global grid, separator), then the prompt's text tokens.  Text ids are fixed
placeholders (the tokenizer is not part of the model); only their count matters for cost.  Pixel tensors are
``torch.empty`` on meta and seeded uniform noise in [-1, 1] elsewhere.

Generation semantics (docs/architecture.md): ``max_new_tokens = N`` -> the first new token comes from the prefill,
then N-1 decode steps; step i (1-based) feeds one token at position ``S + i - 1`` with ``S + i - 1`` cached tokens
and attends over ``S + i`` keys.  The cache is allocated for ``S + N - 1`` positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from attrs import field, frozen
from torch import Tensor

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import WorkloadError
from llm_perf_opt.sources.deepseek_ocr_v1.cache import KVCache

__all__ = [
    "DecodeInputs",
    "ImageInputs",
    "PrefillInputs",
    "WorkloadInputs",
    "WorkloadLike",
    "build_inputs",
    "image_token_count",
    "make_inputs",
    "view_side_tokens",
]

TEXT_TOKEN_BASE = 3  # placeholder text ids start here (0 BOS, 1 EOS, 2 pad)
_SEED = 0


class WorkloadLike(Protocol):
    """The fields of ``llm_perf_opt.workloads.Workload`` this builder reads."""

    @property
    def grid(self) -> tuple[int, int]: ...
    @property
    def num_crops(self) -> int: ...
    @property
    def global_view_size(self) -> int: ...
    @property
    def crop_size(self) -> int: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def max_new_tokens(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def seq_len(self) -> int: ...


@frozen(kw_only=True, eq=False)
class ImageInputs:
    """One image's pixel views: ``crops [n, 3, c, c]`` (None: no local views) and ``global_view [1, 3, G, G]``."""

    crops: Tensor | None = field(metadata={"help": "local 640x640 (or 1024) crops, row-major; None without crops"})
    global_view: Tensor = field(metadata={"help": "the padded global view"})


@frozen(kw_only=True, eq=False)
class PrefillInputs:
    """Everything the prefill call takes except the cache and the routing model."""

    input_ids: Tensor = field(metadata={"help": "[B, S] int64"})
    images: tuple[ImageInputs, ...] = field(metadata={"help": "one entry per batch row"})
    images_seq_mask: Tensor = field(metadata={"help": "[B, S] bool, True at image-token positions"})
    image_grid: tuple[tuple[int, int], ...] = field(metadata={"help": "(cols, rows) crop grid per batch row"})
    position_ids: Tensor = field(metadata={"help": "[B, S] int64, 0..S-1"})

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model(**kwargs, past_key_values=cache, routing=...)``."""
        return {
            "input_ids": self.input_ids,
            "images": list(self.images) if self.images else None,  # a text-only request: no encoder runs
            "images_seq_mask": self.images_seq_mask,
            "image_grid": list(self.image_grid),
            "position_ids": self.position_ids,
        }


@frozen(kw_only=True, eq=False)
class DecodeInputs:
    """One decode step: a single new token per row at position ``S + i - 1``."""

    step: int = field(metadata={"help": "1-based decode step"})
    input_ids: Tensor = field(metadata={"help": "[B, 1] int64"})
    position_ids: Tensor = field(metadata={"help": "[B, 1] int64"})

    def kwargs(self) -> dict[str, Any]:
        return {"input_ids": self.input_ids, "position_ids": self.position_ids}


@frozen(kw_only=True, eq=False)
class WorkloadInputs:
    """Prefill inputs plus what is needed to run the decode steps that follow."""

    config: DeepseekOCRConfig
    prefill: PrefillInputs
    seq_len: int = field(metadata={"help": "S, prefill length"})
    max_new_tokens: int = field(metadata={"help": "N; N-1 decode steps follow the prefill"})
    batch_size: int
    device: torch.device
    dtype: torch.dtype

    @property
    def num_decode_steps(self) -> int:
        return max(self.max_new_tokens - 1, 0)

    @property
    def cache_len(self) -> int:
        """Positions the cache holds at the end: ``S + N - 1`` (at least S)."""
        return self.seq_len + self.num_decode_steps

    def decode_step(self, step: int) -> DecodeInputs:
        """Inputs of decode step ``step`` (1-based, ``1 <= step <= N - 1``)."""
        if not 1 <= step <= self.num_decode_steps:
            raise WorkloadError(
                f"decode step {step} is out of range; this workload has steps 1..{self.num_decode_steps}"
            )
        position = self.seq_len + step - 1
        ids = torch.full((self.batch_size, 1), TEXT_TOKEN_BASE, dtype=torch.long)
        pos = torch.full((self.batch_size, 1), position, dtype=torch.long)
        return DecodeInputs(step=step, input_ids=_to(ids, self.device), position_ids=_to(pos, self.device))

    def new_cache(self) -> KVCache:
        """An empty cache with room for ``S + N - 1`` positions, in the model dtype on the inputs' device."""
        return KVCache(
            num_layers=self.config.num_hidden_layers,
            batch_size=self.batch_size,
            num_kv_heads=self.config.num_key_value_heads,
            head_dim=self.config.head_dim,
            max_len=self.cache_len,
            dtype=self.dtype,
            device=self.device,
        )


def view_side_tokens(config: DeepseekOCRConfig, pixels: int) -> int:
    """Feature-grid side of a ``pixels``-wide view: patch grid ``R/16`` halved twice by net_2/net_3 (ceil)."""
    grid = pixels // config.sam.patch_size
    return _ceil_div(_ceil_div(grid, 2), 2)


def image_token_count(
    config: DeepseekOCRConfig, *, grid: tuple[int, int], num_crops: int, global_view_size: int, crop_size: int
) -> int:
    """``nb (nb + 1) + 1`` for the global view, plus ``(nq rows)(nq cols + 1)`` with crops (model-facts §3.2)."""
    nb = view_side_tokens(config, global_view_size)
    total = nb * (nb + 1) + 1
    if num_crops:
        cols, rows = grid
        nq = view_side_tokens(config, crop_size)
        total += (nq * rows) * (nq * cols + 1)
    return total


def make_inputs(
    config: DeepseekOCRConfig,
    *,
    grid: tuple[int, int],
    num_crops: int,
    global_view_size: int,
    crop_size: int,
    prompt_tokens: int = 9,
    max_new_tokens: int = 1,
    batch_size: int = 1,
    device: torch.device | str = "meta",
    dtype: torch.dtype = torch.bfloat16,
    text_only: bool = False,
) -> WorkloadInputs:
    """Build the inputs from explicit workload numbers (what :func:`build_inputs` reads from a workload);
    ``text_only``: no image (BOS and the prompt; the model runs no encoder)."""
    _check(grid=grid, num_crops=num_crops, prompt_tokens=prompt_tokens, batch_size=batch_size)
    device = torch.device(device)
    n_img = (
        0
        if text_only
        else image_token_count(
            config, grid=grid, num_crops=num_crops, global_view_size=global_view_size, crop_size=crop_size
        )
    )
    seq_len = 1 + n_img + prompt_tokens
    row_ids = [config.bos_token_id] + [config.image_token_id] * n_img + _text_ids(config, prompt_tokens)
    row_mask = [False] + [True] * n_img + [False] * prompt_tokens
    ids = _rows(torch.tensor(row_ids, dtype=torch.long), batch_size, device)
    mask = _rows(torch.tensor(row_mask, dtype=torch.bool), batch_size, device)
    positions = _rows(torch.arange(seq_len, dtype=torch.long), batch_size, device)
    images = tuple(
        ImageInputs(
            crops=_pixels((num_crops, 3, crop_size, crop_size), device, dtype, seed=_SEED + 2 * b)
            if num_crops
            else None,
            global_view=_pixels((1, 3, global_view_size, global_view_size), device, dtype, seed=_SEED + 2 * b + 1),
        )
        for b in range(0 if text_only else batch_size)
    )
    prefill = PrefillInputs(
        input_ids=ids,
        images=images,
        images_seq_mask=mask,
        image_grid=tuple((int(grid[0]), int(grid[1])) for _ in range(batch_size)),
        position_ids=positions,
    )
    return WorkloadInputs(
        config=config,
        prefill=prefill,
        seq_len=seq_len,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
    )


def build_inputs(
    config: DeepseekOCRConfig,
    workload: WorkloadLike,
    *,
    device: torch.device | str = "meta",
    dtype: torch.dtype = torch.bfloat16,
) -> WorkloadInputs:
    """Inputs for a resolved workload; its ``seq_len`` must equal the one this model's geometry gives."""
    inputs = make_inputs(
        config,
        grid=(int(workload.grid[0]), int(workload.grid[1])),
        num_crops=workload.num_crops,
        global_view_size=workload.global_view_size,
        crop_size=workload.crop_size,
        prompt_tokens=workload.prompt_tokens,
        max_new_tokens=workload.max_new_tokens,
        batch_size=workload.batch_size,
        device=device,
        dtype=dtype,
        text_only=bool(getattr(workload, "text_only", False)),
    )
    if inputs.seq_len != workload.seq_len:
        raise WorkloadError(
            f"workload seq_len {workload.seq_len} disagrees with the {inputs.seq_len} tokens model "
            f"{config.variant} produces for it; check the workload's view sizes against the model's patch size"
        )
    return inputs


def _check(*, grid: Sequence[int], num_crops: int, prompt_tokens: int, batch_size: int) -> None:
    cols, rows = grid
    if num_crops and cols * rows != num_crops:
        raise WorkloadError(f"crop grid {cols}x{rows} holds {cols * rows} crops, but num_crops is {num_crops}")
    if prompt_tokens < 0 or batch_size < 1:
        raise WorkloadError(
            f"prompt_tokens must be >= 0 and batch_size >= 1, got prompt_tokens={prompt_tokens}, "
            f"batch_size={batch_size}"
        )


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _text_ids(config: DeepseekOCRConfig, count: int) -> list[int]:
    span = config.vocab_size - TEXT_TOKEN_BASE
    ids = [TEXT_TOKEN_BASE + i % span for i in range(count)]
    return [i if i != config.image_token_id else TEXT_TOKEN_BASE for i in ids]


def _pixels(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype, *, seed: int) -> Tensor:
    if device.type == "meta":
        return torch.empty(shape, device=device, dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen) * 2 - 1).to(device=device, dtype=dtype)


def _rows(row: Tensor, batch_size: int, device: torch.device) -> Tensor:
    """``row`` (a CPU vector) repeated as a dense ``[batch_size, len]`` tensor on ``device``; on meta (no values)
    an empty one, so a large batch of long rows costs no host memory or copy (millions of elements at batch 1,024)."""
    if device.type == "meta":
        return torch.empty((batch_size, row.numel()), dtype=row.dtype, device=device)
    return _to(row.expand(batch_size, row.numel()).contiguous(), device)


def _to(t: Tensor, device: torch.device) -> Tensor:
    return t if device.type == "cpu" else t.to(device)
