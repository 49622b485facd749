"""The bounds of :mod:`llm_perf_opt.admission.limits` as JSON Schema keywords, and the body depth check.

:func:`constrained_request_schema` adds ``minimum``/``maximum``, ``pattern``, ``enum`` and ``maxLength`` to the
request schema derived from the contract class, and states the cross-field rules in the descriptions; the shipped
``openapi.yaml`` must equal it (``tests/contracts/test_contracts_schema.py``), so schema-driven clients and the server
agree.
"""

from __future__ import annotations

import copy
from typing import Any

import llm_perf_opt.admission.limits as L
from llm_perf_opt.hardware import DTYPE_ALIASES, DTYPES, device_ids
from llm_perf_opt.runtimes.catalog import RUNTIMES
from llm_perf_opt.workloads import MODES, PRESETS
from llm_perf_opt.workloads.ocr2 import OCR2_MODES

__all__ = ["constrained_request_schema", "json_depth", "model_variant_pattern"]


def model_variant_pattern() -> str:
    """Built-in variants, ``hf:ORG/NAME[@REV]`` or ``hf-snapshot:/ABSOLUTE/PATH``."""
    names = "|".join(name.replace(".", r"\.") for name in (*L.BUILTIN_V1_SOURCES, L.OCR2_SOURCE))
    hub = L.HUB_SOURCE_PATTERN.removeprefix("^").removesuffix("$")
    return rf"^({names}|{hub}|hf-snapshot:/.+)$"


def _constraints() -> dict[str, tuple[dict[str, Any], str]]:
    """Field -> (schema keywords, sentence appended to its description)."""
    context = L.MAX_CONTEXT_TOKENS["deepseek-ocr-v1-base"]
    by_id: dict[str, list[str]] = {}
    for variant, model_id in L.MODEL_IDS.items():
        by_id.setdefault(model_id, []).append(variant)
    return {
        "model_id": (
            {"maxLength": L.MAX_MODEL_ID_LENGTH, "pattern": L.MODEL_ID_PATTERN},
            "Must be the model model_variant describes: "
            + "; ".join(f"{model_id} for {' and '.join(variants)}" for model_id, variants in by_id.items())
            + "; REPO for hf:REPO@REV.",
        ),
        "model_variant": (
            {"maxLength": L.MAX_SOURCE_LENGTH, "pattern": model_variant_pattern()},
            "hf: and hf-snapshot: sources run remote code and need a server started with --allow-remote-code; "
            "an hf-snapshot: folder must lie under one of its --snapshot-root folders.",
        ),
        "workload_profile_id": ({"enum": sorted(PRESETS)}, ""),
        "profile_run_id": ({"maxLength": L.MAX_ID_LENGTH, "pattern": L.ID_PATTERN}, ""),
        "device": ({"enum": [*device_ids(), None]}, "The device must have the dtype."),
        "mode": (
            {"enum": [*MODES, *OCR2_MODES, None]},
            "dynamic and single are DeepSeek-OCR-2's modes (model_variant deepseek-ocr-2), the others v1's.",
        ),
        "page_width": (
            {"minimum": 1, "maximum": L.MAX_PAGE_SIDE_PX},
            "Set page_width and page_height together or neither.",
        ),
        "page_height": (
            {"minimum": 1, "maximum": L.MAX_PAGE_SIDE_PX},
            "Set page_width and page_height together or neither.",
        ),
        "prompt_tokens": (
            {"minimum": 0, "maximum": L.MAX_PROMPT_TOKENS},
            f"With max_new_tokens N and the prefill length S, S + N - 1 must fit the model's context "
            f"({context} tokens for DeepSeek-OCR v1).",
        ),
        "max_new_tokens": (
            {"minimum": 1, "maximum": L.MAX_NEW_TOKENS},
            f"S + N - 1 must fit the model's context ({context} tokens for DeepSeek-OCR v1); S = 1 + image tokens "
            "+ prompt tokens.",
        ),
        "batch_size": ({"minimum": 1, "maximum": L.MAX_BATCH_SIZE}, ""),
        "dtype": ({"enum": [*DTYPES, *DTYPE_ALIASES, None]}, ""),
        "routing": (
            {"maxLength": L.MAX_SOURCE_LENGTH, "pattern": L.ROUTING_PATTERN},
            f"balanced, skewed:ALPHA (ALPHA in 0..{L.MAX_SKEW_ALPHA:g}) or histogram (the counts inline in "
            "routing_histogram; the server never reads a file a client names).",
        ),
        "routing_histogram": (
            {
                "maxProperties": L.MAX_HISTOGRAM_LAYERS,
                "propertyNames": {"pattern": "^[0-9]{1,3}$"},
                "additionalProperties": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": L.MAX_HISTOGRAM_EXPERTS,
                    "items": {"type": "integer", "minimum": 0, "maximum": L.MAX_HISTOGRAM_COUNT},
                },
            },
            "Needs routing histogram; one list per MoE layer of the model, as many counts as it has experts "
            "(64 for DeepSeek-OCR), not all zero.",
        ),
        "runtime": (
            {"enum": [*RUNTIMES, None]},
            "Every runtime but hf-eager runs flash attention only.",
        ),
        "text_only": ({}, "Built-in DeepSeek-OCR v1 sources only; no mode and no page size with it."),
    }


def constrained_request_schema(derived: dict[str, Any]) -> dict[str, Any]:
    """``derived`` (the request class's JSON Schema) with the admission bounds added to its properties."""
    schema = copy.deepcopy(derived)
    for name, (keywords, rule) in _constraints().items():
        prop = schema["properties"].get(name)
        if prop is None:
            continue
        prop.update(copy.deepcopy(keywords))
        if rule:
            prop["description"] = f"{prop['description']} {rule}"
    return schema


def json_depth(body: bytes, limit: int = L.MAX_JSON_DEPTH) -> int:
    """Nesting depth of a JSON text (``[`` and ``{`` outside strings), scanning at most until it passes ``limit``.

    Cheap and recursion-free, so a body of 60,000 ``[`` is refused before any parser recurses into it.
    """
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest
