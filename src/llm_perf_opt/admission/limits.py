"""Every bound a request or a CLI flag is checked against, in one place (docs/service.md, "Bounds").

Each bound says why it is where it is.  The OpenAPI document states the same numbers (``minimum``/``maximum``,
``pattern``, ``enum``, ``maxLength``); ``tests/contracts/test_contracts_schema.py`` keeps the two together through
:func:`llm_perf_opt.admission.schema.constrained_request_schema`.
"""

from __future__ import annotations

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.workloads import MAX_PAGE_SIDE_PX
from llm_perf_opt.workloads.routing import MAX_HISTOGRAM_FILE_BYTES, MAX_SKEW_ALPHA

__all__ = [
    "BUILTIN_V1_SOURCES",
    "HUB_SOURCE_PATTERN",
    "ID_PATTERN",
    "MAX_BATCH_SIZE",
    "MAX_CONTEXT_TOKENS",
    "MAX_HISTOGRAM_COUNT",
    "MAX_HISTOGRAM_EXPERTS",
    "MAX_HISTOGRAM_FILE_BYTES",
    "MAX_HISTOGRAM_LAYERS",
    "MAX_ID_LENGTH",
    "MAX_JSON_DEPTH",
    "MAX_MODEL_ID_LENGTH",
    "MAX_NEW_TOKENS",
    "MAX_PAGE_SIDE_PX",
    "MAX_PROMPT_TOKENS",
    "MAX_SKEW_ALPHA",
    "MAX_SOURCE_LENGTH",
    "MAX_SWEEP_POINTS",
    "MODEL_IDS",
    "MODEL_ID_PATTERN",
    "OCR2_SOURCE",
    "REMOTE_CODE_PREFIXES",
    "ROUTING_PATTERN",
]

BUILTIN_V1_SOURCES: tuple[str, ...] = ("deepseek-ocr-v1-base", "deepseek-ocr-v1-tiny")
"""The clean-room DeepSeek-OCR v1 variants built into the package."""
OCR2_SOURCE = "deepseek-ocr-2"
"""DeepSeek-OCR-2 through transformers' own ``deepseek_ocr2`` (no remote code)."""
REMOTE_CODE_PREFIXES: tuple[str, ...] = ("hf:", "hf-snapshot:")
"""Model sources whose Python code comes from outside this package (``--trust-remote-code``/``--allow-remote-code``)."""

MODEL_IDS: dict[str, str] = {
    "deepseek-ocr-v1-base": "deepseek-ai/DeepSeek-OCR",
    "deepseek-ocr-v1-tiny": "deepseek-ai/DeepSeek-OCR",
    "deepseek-ocr-2": "deepseek-ai/DeepSeek-OCR-2",
}
"""The Hugging Face model id each built-in variant describes (``model_id`` must agree; ``hf:REPO@REV``: REPO)."""

MAX_CONTEXT_TOKENS: dict[str, int] = {
    "deepseek-ocr-v1-base": DeepseekOCRConfig.base().max_position_embeddings,
    "deepseek-ocr-v1-tiny": DeepseekOCRConfig.tiny().max_position_embeddings,
    # sources/deepseek_ocr2/data/config.json, language_config.max_position_embeddings (the same DeepSeek-V2 decoder)
    "deepseek-ocr-2": 8192,
    # hf: / hf-snapshot: run DeepSeek-OCR v1 remote code: the same decoder and RoPE table as the base variant
    "remote-v1": DeepseekOCRConfig.base().max_position_embeddings,
}
"""Largest KV length ``S + N - 1`` per model source (RoPE table size; 8,192 for DeepSeek-OCR v1)."""

MAX_BATCH_SIZE = 1024
"""Pages per forward.  From batch 8 on, v1's vision stages are extrapolated from batch 1, 2 and 3 and the language
model's op count stops growing once every expert is routed to, so a trace at 1,024 costs little more than one at
256 (issue 19: peak RSS <= 400 MB for any batch up to 1,024); DeepSeek-OCR-2 traces every row, so its batches cost
in proportion.  1,024 is far past the largest batch that fits an 80 GB device on the standard workload (the
report's "largest batch" is 114 on an H100).  ``sweep`` (analytic, no tracing) takes the same bound per point."""
MAX_PROMPT_TOKENS = 8192
"""Text prompt tokens; the context bound ``S + N - 1`` applies on top."""
MAX_NEW_TOKENS = 8192
"""Generated tokens ``N``; the context bound ``S + N - 1`` applies on top."""
MAX_SWEEP_POINTS = 10_000
"""Rows of one ``sweep`` (devices x modes x pages x batches x lengths x dtypes)."""

MAX_ID_LENGTH = 64
"""Catalog, preset, mode, dtype and run ids."""
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""An id: letters, digits, ``.``, ``_``, ``-``; no ``/``, so it can never name a path."""
MAX_MODEL_ID_LENGTH = 96
MODEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}/[A-Za-z0-9][A-Za-z0-9._-]{0,47}$"
"""A Hugging Face model id ``ORG/NAME``."""
MAX_SOURCE_LENGTH = 512
"""``model_variant`` / ``--model``, which may carry a snapshot path."""
HUB_SOURCE_PATTERN = r"^hf:[A-Za-z0-9][A-Za-z0-9._-]{0,47}/[A-Za-z0-9][A-Za-z0-9._-]{0,47}(@[A-Za-z0-9._-]{1,64})?$"
"""``hf:ORG/NAME[@REVISION]``."""

ROUTING_PATTERN = r"^(balanced|histogram|skewed:[0-9]{1,2}(\.[0-9]{1,6})?)$"
"""Routing over HTTP: ``balanced``, ``skewed:ALPHA`` (ALPHA in 0..MAX_SKEW_ALPHA) or ``histogram`` (counts inline)."""
MAX_HISTOGRAM_LAYERS = 64
"""Layers in an inline routing histogram (DeepSeek-OCR v1 and v2 have 12)."""
MAX_HISTOGRAM_EXPERTS = 256
"""Experts per layer in a routing histogram (DeepSeek-OCR: 64)."""
MAX_HISTOGRAM_COUNT = 2**31 - 1
"""Largest token count of one expert in a routing histogram (counts are rescaled, only ratios matter)."""

MAX_JSON_DEPTH = 8
"""Nesting of a request body (the deepest valid request, an inline histogram, has depth 3)."""
