"""What a serving run is asked to do: a mix of requests (pages in a mode, text-only prompts), their lengths, and the
share of pages whose generation runs on to the token limit.

A page request's prompt is ``S = 1 + image tokens + prompt tokens`` positions (BOS, the page's image tokens from the
workload's crop rule, the text prompt; :class:`~llm_perf_opt.workloads.Workload`); a text-only request's prompt is
``1 + prompt tokens``. Output lengths are fixed or drawn from a length file (:func:`load_lengths`).

Repetition loops: DeepSeek-OCR sometimes repeats a phrase until the token limit (its vLLM scripts ship an n-gram
no-repeat logits processor against it). A share ``--repetition-share`` of page requests generates
``max_model_len - S`` tokens instead of its drawn length; ``max_model_len`` defaults to 8192, the value upstream's
``DeepSeek-OCR-vllm`` scripts pass to vLLM (``max_model_len=8192``) and the recipe's ``max_tokens=8192``.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from attrs import field, frozen

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.config.deepseek_ocr2 import DeepseekOCR2Config
from llm_perf_opt.errors import UserError
from llm_perf_opt.workloads import Workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

__all__ = ["DEFAULT_MAX_MODEL_LEN", "LengthDistribution", "RequestMix", "RequestSpec", "load_lengths"]

DEFAULT_MAX_MODEL_LEN = 8192
"""Token limit (prompt + output) of upstream's ``DeepSeek-OCR-vllm/run_dpsk_ocr_*.py`` (``max_model_len=8192``)."""


@frozen(kw_only=True)
class LengthDistribution:
    """Token lengths drawn with replacement from observed samples (optionally weighted)."""

    values: tuple[int, ...] = field(metadata={"help": "observed lengths (tokens), each >= 1"})
    weights: tuple[float, ...] = field(default=(), metadata={"help": "relative weights, one per value; () = equal"})
    source: str = field(default="", metadata={"help": "file the lengths came from"})

    def draw(self, rng: random.Random) -> int:
        """One length, from ``rng`` only (deterministic for a seed)."""
        if self.weights:
            return rng.choices(self.values, weights=self.weights, k=1)[0]
        return self.values[rng.randrange(len(self.values))]

    @property
    def mean(self) -> float:
        """Expected length."""
        if self.weights:
            return sum(v * w for v, w in zip(self.values, self.weights, strict=True)) / sum(self.weights)
        return sum(self.values) / len(self.values)


def _lengths_from_rows(rows: Sequence[dict[str, Any]], where: str) -> LengthDistribution:
    values: list[int] = []
    weights: list[float] = []
    for i, row in enumerate(rows):
        tokens, weight = row.get("tokens"), row.get("weight", 1)
        try:
            value, w = int(str(tokens)), float(str(weight))
        except ValueError:
            raise UserError(f"{where} row {i + 1}: tokens must be an integer and weight a number, got {row}") from None
        if value < 1 or not w > 0:
            raise UserError(f"{where} row {i + 1}: tokens must be >= 1 and weight > 0, got {row}")
        values.append(value)
        weights.append(w)
    if not values:
        raise UserError(f"{where} lists no lengths; give at least one row with a 'tokens' value")
    equal = all(w == weights[0] for w in weights)
    return LengthDistribution(values=tuple(values), weights=() if equal else tuple(weights), source=where)


def load_lengths(path: str | Path) -> LengthDistribution:
    """A length file: CSV with a ``tokens`` column (optional ``weight``), or JSON ``{"tokens": [...],
    "weights": [...]}`` (weights optional). Anything else is one :class:`UserError` naming the file and the fix."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"length file {p} does not exist; give a .csv (column 'tokens') or .json ({{'tokens': []}})")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"length file {p} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise UserError(f"length file {p} must hold an object with a 'tokens' list (and optionally 'weights')")
        tokens, weights = data["tokens"], data.get("weights") or [1] * len(data["tokens"])
        if len(weights) != len(tokens):
            raise UserError(f"length file {p}: 'weights' has {len(weights)} entries, 'tokens' {len(tokens)}")
        rows = [{"tokens": t, "weight": w} for t, w in zip(tokens, weights, strict=True)]
        return _lengths_from_rows(rows, str(p))
    if p.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or "tokens" not in reader.fieldnames:
            raise UserError(f"length file {p} needs a header row with a 'tokens' column (optional 'weight')")
        return _lengths_from_rows(list(reader), str(p))
    raise UserError(f"length file {p} must end in .csv or .json")


@frozen(kw_only=True)
class RequestSpec:
    """One request as the engine sees it."""

    prompt_tokens: int = field(metadata={"help": "S: prompt positions (BOS + image tokens + text prompt)"})
    output_tokens: int = field(metadata={"help": "N: tokens generated (the first by prefill)"})
    image_tokens: int = field(default=0, metadata={"help": "image positions in the prompt (0: text-only)"})
    vision_key: str = field(default="", metadata={"help": "the page workload the vision encoder runs ('' if none)"})
    looped: bool = field(default=False, metadata={"help": "generation ran on to the token limit"})


Lengths = int | LengthDistribution


def _draw(lengths: Lengths, rng: random.Random) -> int:
    return lengths if isinstance(lengths, int) else lengths.draw(rng)


@frozen(kw_only=True)
class RequestMix:
    """Pages in one mode/page size (or text-only prompts), prompt and output lengths, repetition loops."""

    workload: Workload | Ocr2Workload | None = field(
        metadata={"help": "page workload (mode, page size; v1 or DeepSeek-OCR-2); None = text-only"}
    )
    prompt_tokens: Lengths = field(default=9, metadata={"help": "text prompt tokens after BOS (fixed or a file)"})
    output_tokens: Lengths = field(default=1000, metadata={"help": "tokens generated per request (fixed or a file)"})
    repetition_share: float = field(default=0.0, metadata={"help": "share of pages generating to the token limit"})
    max_model_len: int = field(default=DEFAULT_MAX_MODEL_LEN, metadata={"help": "prompt + output token limit"})

    @classmethod
    def pages(
        cls,
        *,
        mode: str,
        page: tuple[int, int],
        prompt_tokens: Lengths = 9,
        output_tokens: Lengths = 1000,
        repetition_share: float = 0.0,
        max_model_len: int = DEFAULT_MAX_MODEL_LEN,
        config: DeepseekOCRConfig | DeepseekOCR2Config | None = None,
    ) -> RequestMix:
        """Page requests in ``mode`` at ``page`` = (W, H) px (DeepSeek-OCR-2 pages when ``config`` is its config)."""
        workload: Workload | Ocr2Workload
        if isinstance(config, DeepseekOCR2Config):
            workload = Ocr2Workload.create(mode=mode, page=page, prompt_tokens=9, max_new_tokens=1)
        else:
            workload = Workload.create(mode=mode, page=page, prompt_tokens=9, max_new_tokens=1, config=config)
        return cls(
            workload=workload,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            repetition_share=repetition_share,
            max_model_len=max_model_len,
        )

    @property
    def image_tokens(self) -> int:
        """Image positions per page request (0 for text-only)."""
        return self.workload.image_tokens if self.workload is not None else 0

    @property
    def vision_key(self) -> str:
        """``mode:WxH`` of the page workload ('' for text-only): what a timer needs to cost the vision encoder."""
        w = self.workload
        return f"{w.mode.name}:{w.page_width}x{w.page_height}" if w is not None else ""

    @property
    def is_text_only(self) -> bool:
        """True when requests carry no page."""
        return self.workload is None

    def check(self) -> None:
        """Bounds a person can get wrong, as one :class:`UserError` each."""
        if not 0.0 <= self.repetition_share <= 1.0:
            raise UserError(f"--repetition-share must be in 0..1 (a share of pages), got {self.repetition_share}")
        if self.workload is None and self.repetition_share > 0:
            raise UserError("--repetition-share is a share of pages; --text-only requests have none (drop one)")
        for name, value in (("--prompt-tokens", self.prompt_tokens), ("--output-tokens", self.output_tokens)):
            if isinstance(value, int) and value < (0 if name == "--prompt-tokens" else 1):
                raise UserError(f"{name} must be >= {0 if name == '--prompt-tokens' else 1}, got {value}")
        longest = 1 + self.image_tokens + _max(self.prompt_tokens) + _max(self.output_tokens)
        if 1 + self.image_tokens + _max(self.prompt_tokens) >= self.max_model_len:
            raise UserError(
                f"the prompt ({1 + self.image_tokens + _max(self.prompt_tokens)} tokens) does not fit "
                f"max_model_len {self.max_model_len}; use fewer prompt tokens or a smaller mode"
            )
        if longest > self.max_model_len:
            raise UserError(
                f"prompt + output can reach {longest} tokens, above max_model_len {self.max_model_len}; "
                "lower --output-tokens"
            )

    def draw(self, rng: random.Random) -> RequestSpec:
        """One request; consumes ``rng`` in a fixed order (prompt, output, loop) so a seed reproduces a run."""
        return self.sampler()(rng)

    def sampler(self) -> Callable[[random.Random], RequestSpec]:
        """:meth:`draw` with the page's token counts resolved once (the engine draws thousands of requests)."""
        image, key, share, limit = self.image_tokens, self.vision_key, self.repetition_share, self.max_model_len
        loops = self.workload is not None and share > 0
        prompts, outputs = self.prompt_tokens, self.output_tokens

        def draw(rng: random.Random) -> RequestSpec:
            prompt = 1 + image + _draw(prompts, rng)
            output = _draw(outputs, rng)
            looped = loops and rng.random() < share
            if looped:
                output = limit - prompt
            return RequestSpec(
                prompt_tokens=prompt, output_tokens=output, image_tokens=image, vision_key=key, looped=looped
            )

        return draw

    def summary(self) -> str:
        """One line: pages, prompt and output lengths, repetition share."""
        w = self.workload
        what = (
            "text-only requests"
            if w is None
            else (f"{w.mode.name} {w.page_width}x{w.page_height} pages ({self.image_tokens} image tokens)")
        )
        lengths = f"prompt {_summary(self.prompt_tokens)} + output {_summary(self.output_tokens)} tokens"
        return f"{what}, {lengths}, repetition share {self.repetition_share:g}"

    def describe(self) -> dict[str, Any]:
        """The mix as plain data (for the JSON output)."""
        w = self.workload
        return {
            "mode": w.mode.name if w is not None else "text-only",
            "page": [w.page_width, w.page_height] if w is not None else None,
            "image_tokens": self.image_tokens,
            "prompt_tokens": _describe_lengths(self.prompt_tokens),
            "output_tokens": _describe_lengths(self.output_tokens),
            "repetition_share": self.repetition_share,
            "max_model_len": self.max_model_len,
        }


def _max(lengths: Lengths) -> int:
    return lengths if isinstance(lengths, int) else max(lengths.values)


def _summary(lengths: Lengths) -> str:
    return str(lengths) if isinstance(lengths, int) else f"~{lengths.mean:.0f} (from {lengths.source})"


def _describe_lengths(lengths: Lengths) -> int | dict[str, Any]:
    if isinstance(lengths, int):
        return lengths
    return {"file": lengths.source, "samples": len(lengths.values), "mean": round(lengths.mean, 3)}
