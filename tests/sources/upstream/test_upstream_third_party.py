"""third_party/: pinned facts and goldens stay consistent with the code that produced them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_perf_opt.analysis.drift import check
from llm_perf_opt.sources.deepseek_ocr2.config import MIN_TRANSFORMERS
from llm_perf_opt.sources.upstream.compat import installed_transformers, version_tuple
from llm_perf_opt.tracer.golden import compare_golden, read_golden

THIRD_PARTY = Path(__file__).resolve().parents[3] / "third_party"
PINNED = THIRD_PARTY / "deepseek-ai--DeepSeek-OCR" / "2c968b433af61a059311cbf8997765023806a24d"
BUILTIN = THIRD_PARTY / "builtin" / "deepseek-ocr-v1-base"
OCR2 = THIRD_PARTY / "deepseek-ai--DeepSeek-OCR-2" / "published"


def test_no_upstream_code_in_git() -> None:
    assert not [p for p in THIRD_PARTY.rglob("*.py") if "_cache" not in p.parts]


def test_pinned_revision_lists_hashes_and_config() -> None:
    hashes = json.loads((PINNED / "code_hashes.json").read_text(encoding="utf-8"))
    assert set(hashes["sha256"]) == {
        "configuration_deepseek_v2.py",
        "conversation.py",
        "deepencoder.py",
        "modeling_deepseekocr.py",
        "modeling_deepseekv2.py",
    }
    assert hashes["git_blob"]["modeling_deepseekv2.py"].startswith("ff008470")  # model-facts §0
    config = json.loads((PINNED / "config.json").read_text(encoding="utf-8"))
    assert (config["hidden_size"], config["n_routed_experts"], config["vocab_size"]) == (1280, 64, 129280)


@pytest.mark.parametrize("name", ["dsocr-standard-v1", "base-1024-no-crops", "gundam-1920x1080"])
def test_upstream_goldens_equal_the_builtin_goldens_class_names_aside(name: str) -> None:
    upstream = read_golden(PINNED / "golden" / f"{name}.json")
    builtin = read_golden(BUILTIN / "golden" / f"{name}.json")
    differences = [d for d in compare_golden(builtin, upstream) if ": class " not in d]
    assert differences == []
    renamed = [d for d in compare_golden(builtin, upstream) if ": class " in d]
    for line in renamed:  # "<node>: class 'a.b.Cls' -> 'x.y.Cls'": the same class name in another module
        before, after = line.split(": class ")[1].split(" -> ")
        assert before.strip("'").rsplit(".", 1)[-1] == after.strip("'").rsplit(".", 1)[-1]


def test_builtin_golden_is_current() -> None:
    assert check("deepseek-ocr-v1-base", BUILTIN, trust=False, names=["gundam-1920x1080"]) == []


@pytest.mark.skipif(
    version_tuple(installed_transformers() or "0") < MIN_TRANSFORMERS, reason="needs transformers >= 5.10.1"
)
def test_ocr2_golden_is_current() -> None:
    assert check("deepseek-ocr-2", OCR2, trust=False, names=["dynamic-2480x3508"]) == []
