"""Per-kind model-source handling in the pipeline: trust, attention, workload, analytic model, spec, provenance."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llm_perf_opt.analysis.model_source import (
    analytic_for,
    check_source_attention,
    model_spec,
    provenance_lines,
    resolve_source_workload,
    source_kind,
    trusted_source,
)
from llm_perf_opt.analysis.options import AnalysisOptions, default_attention
from llm_perf_opt.errors import TrustError, UserError
from llm_perf_opt.sources import resolve_model_source
from llm_perf_opt.workloads import RoutingModel, Workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "upstream_snapshot"
SNAPSHOT = f"hf-snapshot:{FIXTURE}"


def test_kinds_and_default_attention() -> None:
    assert source_kind(resolve_model_source("deepseek-ocr-v1-tiny")) == "builtin-v1"
    assert source_kind(resolve_model_source(SNAPSHOT)) == "upstream-v1"  # resolving reads and hashes, runs nothing
    assert source_kind(resolve_model_source("deepseek-ocr-2")) == "deepseek-ocr-2"
    assert [default_attention(m) for m in ("deepseek-ocr-v1-base", "deepseek-ocr-2", SNAPSHOT, "hf:a/b@main")] == [
        "flash",
        "flash",
        "eager",
        "eager",
    ]


def test_remote_code_needs_trust_and_eager_attention() -> None:
    with pytest.raises(TrustError) as err:
        trusted_source(SNAPSHOT, False)
    assert "\n" not in str(err.value) and "modeling_fixture.py sha256=" in str(err.value)
    source = trusted_source(SNAPSHOT, True)
    assert source.trusted
    with pytest.raises(UserError, match=r"eager only .*\(not flash\); rerun with --attention eager$"):
        check_source_attention(source, "flash")
    check_source_attention(source, "eager")
    check_source_attention(resolve_model_source("deepseek-ocr-2"), "flash")  # OCR-2 runs both
    assert trusted_source("deepseek-ocr-v1-tiny", False).name == "deepseek-ocr-v1-tiny"  # nothing to trust


def test_ocr2_workload_from_the_options() -> None:
    source = resolve_model_source("deepseek-ocr-2")
    standard = resolve_source_workload(AnalysisOptions(model="deepseek-ocr-2"), source)
    assert isinstance(standard, Ocr2Workload)
    # the standard preset's page, prompt and length in OCR-2's default mode: 2x2 tiles of 768 + a 1024 view
    assert (standard.mode.name, standard.page, standard.max_new_tokens, standard.profile_id) == (
        "dynamic",
        (1024, 1024),
        512,
        "dsocr-standard-v1",
    )
    assert standard.seq_len == 1 + (256 + 4 * 144 + 1) + 9
    single = resolve_source_workload(AnalysisOptions(model="deepseek-ocr-2", mode="single", batch_size=2), source)
    assert (single.mode.name, single.batch_size, single.profile_id, single.image_tokens) == ("single", 2, None, 145)
    with pytest.raises(UserError, match=r"has resolution modes dynamic, single, not 'gundam'"):
        resolve_source_workload(AnalysisOptions(model="deepseek-ocr-2", mode="gundam"), source)
    v1 = resolve_source_workload(
        AnalysisOptions(model="deepseek-ocr-v1-tiny"), resolve_model_source("deepseek-ocr-v1-tiny")
    )
    assert isinstance(v1, Workload)


def test_analytic_model_by_kind() -> None:
    ocr2 = resolve_model_source("deepseek-ocr-2")
    work = resolve_source_workload(AnalysisOptions(model="deepseek-ocr-2", mode="single", max_new_tokens=2), ocr2)
    tree = analytic_for(ocr2, work, attention="flash", routing=RoutingModel.balanced())
    assert "prefill/model.language_model.layers.{1..11}.mlp.experts" in tree
    tiny = resolve_model_source("deepseek-ocr-v1-tiny")
    v1 = analytic_for(
        tiny, Workload.create(mode="tiny", page=(512, 512)), attention="eager", routing=RoutingModel.balanced()
    )
    assert "prefill/model.layers.{1..2}.mlp.experts.{0..7}" in v1


PROVENANCE = {
    "source": "hf:deepseek-ai/DeepSeek-OCR@main",
    "hf_repo": "deepseek-ai/DeepSeek-OCR",
    "hf_revision": "2c968b433af61a059311cbf8997765023806a24d",
    "config_sha256": "ab" * 32,
    "code_hashes": {"modeling_deepseekocr.py": "cd" * 32, "deepencoder.py": "ef" * 32},
    "transformers_version": "4.46.3",
    "stubbed_packages": ["torchvision"],
    "adapters": [{"kind": "moe-shape-only-dispatch", "target": "m.DeepseekV2MoE.moe_infer", "uses": 22}],
}


def test_provenance_lines_name_hashes_revision_and_adapters() -> None:
    lines = provenance_lines(PROVENANCE)
    assert lines[0].startswith(
        "model source: hf:deepseek-ai/DeepSeek-OCR@main (deepseek-ai/DeepSeek-OCR at commit 2c968b43"
    )
    assert f"deepencoder.py sha256={'ef' * 32}, modeling_deepseekocr.py sha256={'cd' * 32}" in lines[0]  # sorted
    assert lines[1] == "remote code environment: transformers 4.46.3; host-only packages stubbed: torchvision"
    assert lines[2] == "meta adapters: moe-shape-only-dispatch on m.DeepseekV2MoE.moe_infer (used 22x)"
    assert provenance_lines({}) == []


def test_model_spec_per_kind() -> None:
    tiny = model_spec(resolve_model_source("deepseek-ocr-v1-tiny"), None)
    assert (tiny.model_id, tiny.model_variant, tiny.hf_revision, tiny.config_path) == (
        "deepseek-ai/DeepSeek-OCR",
        "deepseek-ocr-v1-tiny",
        None,
        None,
    )
    upstream = model_spec(resolve_model_source(SNAPSHOT), PROVENANCE)
    assert upstream.hf_revision == "2c968b433af61a059311cbf8997765023806a24d"
    assert upstream.config_path == str(FIXTURE / "config.json")
    assert f"modeling_deepseekocr.py sha256={'cd' * 32}" in upstream.notes
    ocr2 = model_spec(resolve_model_source("deepseek-ocr-2"), {"source": "deepseek-ocr-2", "config_sha256": "e2"})
    assert (ocr2.model_id, ocr2.model_variant, ocr2.hidden_size) == (
        "deepseek-ai/DeepSeek-OCR-2",
        "deepseek-ocr-2",
        1280,
    )
    assert "Qwen2 encoder" in ocr2.notes


def test_resolving_the_ocr2_source_loads_no_torch() -> None:
    """A cached OCR-2 trace's report resolves the source, its workload and analytic model: torch stays unloaded
    (building or driving the tree imports it)."""
    script = (
        "import sys\n"
        "from llm_perf_opt.analysis.model_source import analytic_for, resolve_source_workload, trusted_source\n"
        "from llm_perf_opt.analysis.options import AnalysisOptions\n"
        "from llm_perf_opt.workloads import RoutingModel\n"
        "source = trusted_source('deepseek-ocr-2', False)\n"
        "workload = resolve_source_workload(AnalysisOptions(model='deepseek-ocr-2'), source)\n"
        "analytic_for(source, workload, attention='flash', routing=RoutingModel.balanced())\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"
