"""The CLI with upstream model sources: trust on analyze/tree, ``check --model`` and pinned (third_party) goldens.

Runs that execute the fixture snapshot's remote code need transformers and skip without it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_perf_opt.analysis.drift import write as pin
from llm_perf_opt.analysis.options import AnalysisOptions
from llm_perf_opt.analysis.pinned import is_pinned_golden
from llm_perf_opt.analysis.pipeline import run_analysis
from llm_perf_opt.cli import cli
from llm_perf_opt.report.files import write_report

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "upstream_snapshot"
SNAPSHOT = f"hf-snapshot:{FIXTURE}"
REQUIRES_TRANSFORMERS = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None, reason="the fixture snapshot imports transformers"
)


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_analyze_and_tree_refuse_untrusted_remote_code(tmp_path: Path) -> None:
    for args in (
        ("analyze", "--model", SNAPSHOT, "--out", str(tmp_path / "r"), "--quiet"),
        ("tree", "--model", SNAPSHOT),
        ("tree", "--model", SNAPSHOT, "--flat"),
    ):
        code, _, err = _invoke(*args)
        assert code == 1, args
        assert err.startswith(f"error: model source {SNAPSHOT} executes remote code and it was not trusted;")
        assert err.count("\n") == 1 and "modeling_fixture.py sha256=" in err
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def pinned_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pinned golden folder for the built-in tiny model (one workload: Gundam 4x2 crops, N = 3)."""
    folder = tmp_path_factory.mktemp("pinned") / "tiny"
    pin("deepseek-ocr-v1-tiny", folder, trust=False, names=["gundam-1920x1080"])
    return folder


def test_check_reads_a_pinned_golden(pinned_tiny: Path, tmp_path: Path) -> None:
    assert is_pinned_golden(pinned_tiny) and is_pinned_golden(pinned_tiny / "golden" / "gundam-1920x1080.json")
    code, out, _ = _invoke("check", "--golden", str(pinned_tiny), "--quiet")
    assert code == 0, out
    assert out.splitlines()[-1] == (
        f"deepseek-ocr-v1-tiny vs {pinned_tiny}: equal over 1 workload(s) (gundam-1920x1080); 0 code file change(s)"
    )
    changed = tmp_path / "changed"
    shutil.copytree(pinned_tiny, changed)
    path = changed / "golden" / "gundam-1920x1080.json"
    golden = json.loads(path.read_text())
    golden["nodes"]["prefill/lm_head"]["cost"]["matmul_flops"] += 2
    path.write_text(json.dumps(golden))
    fresh = tmp_path / "fresh"
    code, out, _ = _invoke("check", "--golden", str(path), "--out", str(fresh), "--quiet")
    assert code == 1
    assert "[gundam-1920x1080] prefill/lm_head: matmul_flops" in out
    assert (fresh / "golden" / "gundam-1920x1080.json").is_file()


@REQUIRES_TRANSFORMERS
def test_check_a_changed_snapshot_names_the_node(pinned_tiny: Path, tmp_path: Path) -> None:
    snapshot = tmp_path / "snap"
    shutil.copytree(FIXTURE, snapshot, ignore=shutil.ignore_patterns("__pycache__"))
    pinned = tmp_path / "pinned"
    pin(f"hf-snapshot:{snapshot}", pinned, trust=True, names=["gundam-1920x1080"])
    code, out, _ = _invoke("check", "--golden", str(pinned), "--trust-remote-code", "--quiet")
    assert code == 0, out
    config = snapshot / "config.json"
    config.write_text(config.read_text().replace('"n_routed_experts": 4,', '"n_routed_experts": 5,'))
    code, out, _ = _invoke("check", "--golden", str(pinned), "--trust-remote-code", "--quiet")
    assert code == 1
    assert "[gundam-1920x1080] prefill/model.layers.1.mlp.experts.{0..4}: node added" in out
    # the same gate against another model source: the built-in tiny model's pinned goldens
    code, out, _ = _invoke("check", "--model", SNAPSHOT, "--trust-remote-code", "--golden", str(pinned_tiny))
    assert code == 1 and "node removed" in out


@REQUIRES_TRANSFORMERS
def test_check_a_report_golden_with_another_model(tmp_path: Path) -> None:
    golden = tmp_path / "golden"
    options = AnalysisOptions(model="deepseek-ocr-v1-tiny", attention="eager", mode="base", max_new_tokens=2)
    write_report(run_analysis(options), golden)
    code, out, err = _invoke("check", "--golden", str(golden), "--model", SNAPSHOT, "--quiet")
    assert code == 1 and "executes remote code and it was not trusted" in err
    code, out, _ = _invoke("check", "--golden", str(golden), "--model", SNAPSHOT, "--trust-remote-code", "--quiet")
    assert code == 1
    assert out.splitlines()[-1].startswith("DIFFERENT:")


@REQUIRES_TRANSFORMERS
def test_analyze_and_tree_run_trusted_remote_code_eager_by_default(tmp_path: Path) -> None:
    out = tmp_path / "report"
    code, stdout, err = _invoke(
        "analyze", "--model", SNAPSHOT, "--trust-remote-code", "--max-new-tokens", "2", "--out", str(out), "--quiet"
    )
    assert code == 0, err
    assert stdout.strip() == str(out / "report.md")
    report = (out / "report.md").read_text()
    assert "· eager attention ·" in report and "--trust-remote-code" in report
    code, stdout, _ = _invoke("tree", "--model", SNAPSHOT, "--trust-remote-code", "--max-new-tokens", "2")
    assert code == 0 and "      embed_tokens  Embedding  params 655k" in stdout  # 512 x 1280 vocabulary
    code, stdout, _ = _invoke("tree", "--model", SNAPSHOT, "--trust-remote-code", "--flat")
    assert code == 0 and json.loads(stdout.splitlines()[0])["class_name"] == "DeepseekOCRForCausalLM"
    code, _, err = _invoke("tree", "--model", SNAPSHOT, "--trust-remote-code", "--attention", "flash")
    assert code == 1 and "rerun with --attention eager" in err
