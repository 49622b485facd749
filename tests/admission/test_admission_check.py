"""The request validator: every field of the HTTP request and the analyze/sweep flags, against the named bounds."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from llm_perf_opt.admission import (
    AdmissionError,
    check_analysis_flags,
    check_model_source_flag,
    check_request,
    check_snapshot_path,
    check_sweep_flags,
    inline_routing_text,
    limits,
)
from llm_perf_opt.contracts import DeepSeekOCRAnalyticRequest
from llm_perf_opt.errors import ContractError
from llm_perf_opt.workloads import RoutingModel

BASE: dict[str, Any] = {
    "model_id": "deepseek-ai/DeepSeek-OCR",
    "model_variant": "deepseek-ocr-v1-base",
    "workload_profile_id": "dsocr-standard-v1",
}


def _check(**fields: Any) -> None:
    check_request(DeepSeekOCRAnalyticRequest(**{**BASE, **fields}))


def _refused(path: str, *words: str, **fields: Any) -> str:
    with pytest.raises(AdmissionError) as info:
        _check(**fields)
    assert info.value.path == path, str(info.value)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


def test_the_default_request_and_every_preset_pass() -> None:
    _check()
    for preset in ("dsocr-a4-text-v1", "dsocr-slide-v1", "dsocr-a4-300dpi-gundam-m-v1", "dsocr-tiny-v1"):
        _check(workload_profile_id=preset)
    _check(model_variant="deepseek-ocr-2", model_id="deepseek-ai/DeepSeek-OCR-2", mode="single")
    _check(model_variant="deepseek-ocr-v1-tiny", device="a100-80gb", dtype="bfloat16", routing="skewed:1.5")


def test_admission_errors_are_contract_errors_with_a_path() -> None:
    assert issubclass(AdmissionError, ContractError)


@pytest.mark.parametrize(
    ("fields", "path", "words"),
    [
        ({"model_variant": "evil"}, "$.model_variant", ["unknown model source", "deepseek-ocr-v1-base"]),
        ({"model_variant": "hf:org/name@main", "model_id": "org/name"}, "$.model_variant", ["--allow-remote-code"]),
        ({"model_id": "evil/other"}, "$.model_id", ["deepseek-ai/DeepSeek-OCR"]),
        ({"model_id": "../../etc/passwd"}, "$.model_id", ["ORG/NAME"]),
        ({"model_id": "a/" + "b" * 200}, "$.model_id", ["1..96 characters"]),
        ({"workload_profile_id": "/etc/passwd"}, "$.workload_profile_id", ["unknown", "dsocr-standard-v1"]),
        ({"workload_profile_id": "x" * 10_000}, "$.workload_profile_id", ["1..64 characters", "length 10000"]),
        ({"device": "nope"}, "$.device", ["h100-sxm"]),
        ({"dtype": "int3"}, "$.dtype", ["bf16"]),
        ({"device": "a100-80gb", "dtype": "fp8"}, "$.dtype", ["a100-80gb", "bf16"]),
        ({"mode": "dynamic"}, "$.mode", ["gundam"]),
        ({"page_width": 1024}, "$.page_width", ["page_width 1024: set without page_height", "both"]),
        ({"page_height": 768}, "$.page_height", ["page_height 768: set without page_width", "both"]),
        ({"page_width": 0, "page_height": 10}, "$.page_width", ["1..20000"]),
        ({"page_width": 10, "page_height": 10**9}, "$.page_height", ["1..20000"]),
        ({"prompt_tokens": -1}, "$.prompt_tokens", ["0..8192"]),
        ({"prompt_tokens": 10**12}, "$.prompt_tokens", ["0..8192"]),
        ({"max_new_tokens": 0}, "$.max_new_tokens", ["1..8192"]),
        ({"max_new_tokens": 2**63}, "$.max_new_tokens", ["1..8192"]),
        ({"max_new_tokens": 8000}, "$.max_new_tokens", ["8702", "8192", "at most 7490"]),
        # the prefill alone past the context: the prompt's (or the page's) fault, no output length fits
        ({"prompt_tokens": 8000}, "$.prompt_tokens", ["prompt_tokens 8000: S + N - 1 = 8694 + 512", "mode or prompt"]),
        ({"prompt_tokens": 7000}, "$.max_new_tokens", ["max_new_tokens 512", "at most 499"]),
        ({"batch_size": 137774}, "$.batch_size", ["1..1024"]),
        ({"batch_size": 0}, "$.batch_size", ["1..1024"]),
        ({"routing": "histogram:/etc/passwd"}, "$.routing", ["inline", "never as a file"]),
        ({"routing": "skewed:nan"}, "$.routing", ["skewed:ALPHA"]),
        ({"routing": "skewed:9"}, "$.routing", ["0..8"]),
        ({"routing": "skewed:1e309"}, "$.routing", ["routing 'skewed:1e309': skew out of range", "0..8"]),
        ({"routing": "skewed:-1"}, "$.routing", ["skew out of range", "0..8"]),
        ({"routing": "skewed:abc"}, "$.routing", ["routing 'skewed:abc': skew is not a number", "0..8"]),
        ({"routing": "skewed:1e0"}, "$.routing", ["skew not written as plain decimals", "1.5"]),
        ({"routing": "histogram"}, "$.routing_histogram", ["go together"]),
        ({"routing_histogram": {"1": [1] * 64}}, "$.routing_histogram", ["without routing"]),
        ({"routing": "histogram", "routing_histogram": {"1": [1] * 3}}, "$.routing_histogram.1", ["64"]),
        ({"routing": "histogram", "routing_histogram": {"99": [1] * 64}}, "$.routing_histogram", ["0..11"]),
        ({"routing": "histogram", "routing_histogram": {"1": [0] * 64}}, "$.routing_histogram.1", ["positive"]),
        ({"routing": "histogram", "routing_histogram": {"1": [-1] * 64}}, "$.routing_histogram.1", ["integers"]),
        (
            {"routing": "histogram", "routing_histogram": {"1": [100] * 6 + [0] * 58, "2": [100] * 5 + [0] * 59}},
            "$.routing_histogram.2",
            ["layer 2 has 5 experts with counts; top-6 routing needs at least 6"],
        ),
        ({"profile_run_id": "../../x"}, "$.profile_run_id", ["pattern"]),
        ({"attention": "eager", "model_variant": "deepseek-ocr-2", "mode": "tiny"}, "$.model_id", ["OCR-2"]),
    ],
)
def test_each_violation_names_the_field_the_bound_and_the_fix(
    fields: dict[str, Any], path: str, words: list[str]
) -> None:
    _refused(path, *words, **fields)


def test_ocr2_modes_are_its_own() -> None:
    ocr2 = {"model_variant": "deepseek-ocr-2", "model_id": "deepseek-ai/DeepSeek-OCR-2"}
    _refused("$.mode", "dynamic, single", mode="gundam", **ocr2)


def test_an_inline_histogram_is_accepted_and_becomes_canonical_routing_text() -> None:
    histogram = {"2": [2] * 64, "1": [1] * 64}
    _check(routing="histogram", routing_histogram=histogram)
    text = inline_routing_text(histogram)
    assert text.startswith('histogram:{"1":[1,')
    model = RoutingModel.parse(text)
    assert model.kind == "histogram" and model.source == "inline"
    assert [layer for layer, _ in model.histogram] == [1, 2]


def _snapshot_request(path: str) -> DeepSeekOCRAnalyticRequest:
    return DeepSeekOCRAnalyticRequest(**{**BASE, "model_variant": f"hf-snapshot:{path}"})


def test_snapshots_only_under_configured_roots(tmp_path: Path) -> None:
    root, outside = tmp_path / "snapshots", tmp_path / "elsewhere"
    (root / "ocr").mkdir(parents=True)
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    check_request(_snapshot_request(str(root / "ocr")), allow_remote_code=True, snapshot_roots=[root])
    assert check_snapshot_path(f"hf-snapshot:{root / 'ocr'}", [root]) == (root / "ocr").resolve()
    cases = {
        str(root / "escape"): "not under a snapshot root",  # a symlink out of the root
        str(root / ".." / "elsewhere"): "'..'",
        "relative/path": "absolute",
        str(outside): "not under a snapshot root",
    }
    for path, words in cases.items():
        with pytest.raises(AdmissionError, match="model_variant") as info:
            check_request(_snapshot_request(path), allow_remote_code=True, snapshot_roots=[root])
        assert words in str(info.value)
    with pytest.raises(AdmissionError, match="--snapshot-root"):
        check_request(_snapshot_request(str(root / "ocr")), allow_remote_code=True)
    with pytest.raises(AdmissionError, match="--allow-remote-code"):
        check_request(_snapshot_request(str(root / "ocr")), snapshot_roots=[root])


def test_hub_sources_need_a_matching_model_id() -> None:
    hub = {"model_variant": "hf:deepseek-ai/DeepSeek-OCR@abc123", "model_id": "deepseek-ai/DeepSeek-OCR"}
    check_request(DeepSeekOCRAnalyticRequest(**{**BASE, **hub}), allow_remote_code=True)
    with pytest.raises(AdmissionError, match=r"model_id"):
        check_request(DeepSeekOCRAnalyticRequest(**{**BASE, **hub, "model_id": "x/y"}), allow_remote_code=True)
    with pytest.raises(AdmissionError, match="eager"):
        check_request(DeepSeekOCRAnalyticRequest(**{**BASE, **hub, "attention": "flash"}), allow_remote_code=True)


# -- the CLI door ----------------------------------------------------------------------------------------------------


def _flags(**flags: Any) -> None:
    check_analysis_flags(**{"model": "deepseek-ocr-v1-base", "workload_id": "dsocr-standard-v1", **flags})


@pytest.mark.parametrize(
    ("flags", "path"),
    [
        ({"batch_size": 100_000}, "--batch"),
        ({"max_new_tokens": 200_000}, "--max-new-tokens"),
        ({"prompt_tokens": 9000}, "--prompt-tokens"),
        ({"max_new_tokens": 8000}, "--max-new-tokens"),
        ({"page": (0, 5)}, "--image"),
        ({"device": "nope"}, "--device"),
        ({"model": "evil"}, "--model"),
        ({"routing": "skewed:inf"}, "--routing"),
        ({"routing": "histogram:/dev/zero"}, "--routing"),
        ({"workload_id": "nope"}, "--workload"),
    ],
)
def test_cli_flags_are_checked_with_flag_names(flags: dict[str, Any], path: str) -> None:
    with pytest.raises(AdmissionError) as info:
        _flags(**flags)
    assert info.value.path == path
    assert str(info.value).startswith(path)


def test_cli_histogram_needs_top_k_experts_per_layer(tmp_path: Path) -> None:
    hist = tmp_path / "hist.json"
    top_k = 6  # DeepSeek-OCR v1 base (and OCR-2's decoder): num_experts_per_tok
    hist.write_text(json.dumps({str(layer): [100] * top_k + [0] * (64 - top_k) for layer in range(1, 12)}))
    _flags(routing=f"histogram:{hist}")
    hist.write_text(json.dumps({str(layer): [100] * (top_k - 1) + [0] * (65 - top_k) for layer in range(1, 12)}))
    with pytest.raises(AdmissionError) as info:
        _flags(routing=f"histogram:{hist}")
    assert info.value.path == "--routing"
    assert "layer 1 has 5 experts with counts; top-6 routing needs at least 6" in str(info.value)
    tiny = tmp_path / "tiny.json"  # the tiny config routes top-2: two experts with counts are enough there
    tiny.write_text(json.dumps({"1": [0] * 62 + [5, 5]}))
    _flags(routing=f"histogram:{tiny}", model="deepseek-ocr-v1-tiny")
    with pytest.raises(AdmissionError, match="top-6 routing needs at least 6"):
        _flags(routing=f"histogram:{tiny}")


def test_cli_histogram_files_must_be_regular_and_small(tmp_path: Path) -> None:
    good = tmp_path / "hist.json"
    good.write_text('{"1": [1, 2, 3, 4, 5, 6]}')
    _flags(routing=f"histogram:{good}")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (limits.MAX_HISTOGRAM_FILE_BYTES + 1))
    for path, words in {
        fifo: "not a regular file",
        tmp_path: "a folder",
        big: "larger than",
        "/dev/zero": "regular",
    }.items():
        with pytest.raises(AdmissionError, match=words):
            _flags(routing=f"histogram:{path}")


def test_cli_hf_snapshot_paths_are_the_users_own() -> None:
    _flags(model="hf-snapshot:some/local/folder")  # the CLI user may name any folder on their own machine
    check_model_source_flag("hf:deepseek-ai/DeepSeek-OCR@main")
    with pytest.raises(AdmissionError, match="--model"):
        check_model_source_flag("hf:../x")


def test_sweep_flags() -> None:
    good: dict[str, Any] = {
        "devices": ["h100-sxm"],
        "modes": ["gundam"],
        "pages": [(1024, 1024)],
        "batch_sizes": [1, 8],
        "max_new_tokens": [512],
        "dtypes": ["bf16"],
        "prompt_tokens": 9,
        "routing": "balanced",
    }
    check_sweep_flags(**good)
    bad = {
        "batch_sizes": [1, 100_000],
        "max_new_tokens": [8000],
        "devices": ["nope"],
        "modes": ["dynamic"],
        "pages": [(0, 1)],
        "prompt_tokens": 10**9,
        "routing": "skewed:-1",
        "dtypes": ["nope"],
    }
    for name, value in bad.items():
        with pytest.raises(AdmissionError):
            check_sweep_flags(**{**good, name: value})
    with pytest.raises(AdmissionError, match="points"):
        check_sweep_flags(**{**good, "batch_sizes": list(range(1, 201)), "max_new_tokens": list(range(1, 101))})


def test_runtimes_are_checked_with_the_attention_they_run() -> None:
    _flags(runtime="hf-eager")
    _flags(runtime="vllm", attention="flash")
    with pytest.raises(AdmissionError, match="unknown inference runtime") as info:
        _flags(runtime="nope")
    assert info.value.path == "--runtime"
    with pytest.raises(AdmissionError, match="flash attention only"):
        _flags(runtime="vllm", attention="eager")
    with pytest.raises(AdmissionError, match="flash attention only"):
        _flags(runtime="vllm", model="hf-snapshot:some/folder")  # remote code runs eager only


def test_runtime_and_text_only_are_checked_at_the_door() -> None:
    _check(runtime="vllm", text_only=True)
    _refused("$.runtime", "runtime 'trt'", "hf-eager", runtime="trt")
    # over HTTP the fix names the JSON fields, on the command line the flags
    message = _refused("$.runtime", "flash attention only", runtime="vllm", attention="eager")
    assert message.endswith('use runtime "hf-eager", or attention "flash"') and "--" not in message, message
    with pytest.raises(AdmissionError, match=r"use --runtime hf-eager, or --attention flash$"):
        _flags(runtime="vllm", attention="eager")
    _refused(
        "$.text_only",
        "'deepseek-ocr-2'",
        "traced for the built-in DeepSeek-OCR v1 sources only",
        model_variant="deepseek-ocr-2",
        model_id="deepseek-ai/DeepSeek-OCR-2",
        text_only=True,
    )


def test_a_text_only_request_takes_no_page_and_no_mode() -> None:
    # Both would be ignored silently (a text-only request has no image); over HTTP and on the command line alike.
    _refused("$.page_width", "text-only", "800x600", text_only=True, page_width=800, page_height=600)
    _refused("$.mode", "text-only", "'tiny'", text_only=True, mode="tiny")
    with pytest.raises(AdmissionError, match="drop --image or drop --text-only") as info:
        _flags(text_only=True, page=(640, 640))
    assert info.value.path == "--image"
    _flags(text_only=True)


def test_a_text_only_request_has_the_context_of_its_prompt() -> None:
    # S = 1 BOS + 9 prompt tokens, not the page's 703: 8,000 new tokens fit 8,192, 8,192 do not
    _flags(text_only=True, max_new_tokens=8000)
    with pytest.raises(AdmissionError, match=r"S \+ N - 1 = 10 \+ 8192 - 1 = 8201 tokens.*at most 8183"):
        _flags(text_only=True, max_new_tokens=8192)
    _check(text_only=True, max_new_tokens=8000)
    # a prompt that leaves no room is the prompt's fault, and there is no page or mode to make smaller
    with pytest.raises(AdmissionError, match=r"^--prompt-tokens 8192: .*; use a shorter prompt$") as info:
        _flags(text_only=True, prompt_tokens=8192, max_new_tokens=1)
    assert info.value.path == "--prompt-tokens"
