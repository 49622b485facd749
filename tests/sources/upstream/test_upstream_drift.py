"""The drift gate: pin goldens for a source, re-check them, and fail naming the nodes when the code moved."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from upstream_helpers import REQUIRES_TRANSFORMERS

from llm_perf_opt.analysis.drift import check, main, write

pytestmark = REQUIRES_TRANSFORMERS


def test_pin_then_check_clean_then_drift(snapshot_copy: Callable[..., Path], tmp_path: Path) -> None:
    root = snapshot_copy()
    pinned = tmp_path / "pinned"
    write(f"hf-snapshot:{root}", pinned, trust=True, names=["gundam-1920x1080"])
    hashes = json.loads((pinned / "code_hashes.json").read_text(encoding="utf-8"))
    assert set(hashes["sha256"]) == {"configuration_fixture.py", "fixture_layers.py", "modeling_fixture.py"}
    assert len(hashes["git_blob"]["modeling_fixture.py"]) == 40
    assert check(f"hf-snapshot:{root}", pinned, trust=True) == []
    assert main(["--model", f"hf-snapshot:{root}", "--golden", str(pinned), "--trust-remote-code"]) == 0

    text = (
        (root / "config.json").read_text(encoding="utf-8").replace('"n_routed_experts": 4,', '"n_routed_experts": 5,')
    )
    (root / "config.json").write_text(text, encoding="utf-8")
    problems = check(f"hf-snapshot:{root}", pinned, trust=True)
    assert "[gundam-1920x1080] prefill/model.layers.1.mlp.experts.{0..4}: node added" in problems
    assert main(["--model", f"hf-snapshot:{root}", "--golden", str(pinned), "--trust-remote-code"]) == 1


def test_code_change_with_the_same_tree_is_listed_but_passes(
    snapshot_copy: Callable[..., Path], tmp_path: Path
) -> None:
    root = snapshot_copy()
    pinned = tmp_path / "pinned"
    write(f"hf-snapshot:{root}", pinned, trust=True, names=["gundam-1920x1080"])
    with (root / "fixture_layers.py").open("a", encoding="utf-8") as handle:
        handle.write("\n# a comment changes the hash, not the tree\n")
    problems = check(f"hf-snapshot:{root}", pinned, trust=True)
    assert len(problems) == 1 and problems[0].startswith("[code] fixture_layers.py: sha256 ")
    assert main(["--model", f"hf-snapshot:{root}", "--golden", str(pinned), "--trust-remote-code"]) == 0


def test_untrusted_or_missing_goldens_are_errors(
    snapshot_copy: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = snapshot_copy()
    assert main(["--model", f"hf-snapshot:{root}", "--golden", str(tmp_path)]) == 2
    assert "--trust-remote-code" in capsys.readouterr().err
    assert main(["--model", f"hf-snapshot:{root}", "--golden", str(tmp_path), "--trust-remote-code"]) == 2
    assert "no goldens" in capsys.readouterr().err
