"""transformers version handling: a static import check that names what is missing and the version needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from upstream_helpers import REQUIRES_TRANSFORMERS

from llm_perf_opt.sources.upstream.compat import (
    RemoteCodeImportError,
    installed_transformers,
    scan_imports,
    version_tuple,
)
from llm_perf_opt.sources.upstream.loader import load_remote_code
from llm_perf_opt.sources.upstream.snapshot import read_snapshot

pytestmark = REQUIRES_TRANSFORMERS

LLAMA_46 = "from transformers.models.llama.modeling_llama import LlamaFlashAttention2\n"


def test_version_tuple() -> None:
    assert version_tuple("4.46.3") == (4, 46, 3)
    assert version_tuple("5.10.1.dev0") == (5, 10, 1)
    assert version_tuple("5.0.0rc1") == (5, 0, 0)


def test_fixture_imports_cleanly_with_the_installed_transformers(fixture_dir: Path) -> None:
    problems = scan_imports(read_snapshot(fixture_dir))
    assert not problems.blocking
    assert installed_transformers() is not None


def test_llama_46_attention_import_is_judged_by_the_installed_version(snapshot_copy: Any) -> None:
    root = snapshot_copy(("fixture_layers.py", "import torch\n", "import torch\n" + LLAMA_46))
    snap = read_snapshot(root, source="hf-snapshot:llama46")
    problems = scan_imports(snap)
    installed = version_tuple(installed_transformers() or "0")
    if installed[:2] == (4, 46):
        assert not problems.blocking
        return
    assert problems.missing_names == (
        ("fixture_layers.py", "transformers.models.llama.modeling_llama", "LlamaFlashAttention2"),
    )
    with pytest.raises(RemoteCodeImportError) as err:
        load_remote_code(snap)
    message = str(err.value)
    assert "\n" not in message
    assert "LlamaFlashAttention2" in message and "transformers 4.46.3 (config.json transformers_version)" in message
    assert f"transformers {installed_transformers()}" in message


def test_missing_packages_are_named_with_the_install_command(snapshot_copy: Any) -> None:
    root = snapshot_copy(("fixture_layers.py", "import torch\n", "import torch\nimport llm_perf_opt_no_such_pkg\n"))
    snap = read_snapshot(root, source="hf-snapshot:pkg")
    with pytest.raises(RemoteCodeImportError, match="pip install llm_perf_opt_no_such_pkg"):
        load_remote_code(snap)


def test_conditional_imports_are_not_required(snapshot_copy: Any) -> None:
    guarded = "import torch\nif False:\n    import llm_perf_opt_no_such_pkg\n"
    root = snapshot_copy(("fixture_layers.py", "import torch\n", guarded))
    assert not scan_imports(read_snapshot(root)).blocking


def test_missing_host_only_packages_are_stubbed_and_raise_when_called(snapshot_copy: Any) -> None:
    pytest.importorskip("torch")
    if __import__("importlib").util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed here; the stub is only used when it is missing")
    code = "import torch\nfrom torchvision import transforms\nPIPELINE = transforms.Compose\n"
    root = snapshot_copy(("fixture_layers.py", "import torch\n", code))
    snap = read_snapshot(root, source="hf-snapshot:stub")
    assert scan_imports(snap).stubbed == ("torchvision",)
    remote = load_remote_code(snap)
    assert remote.stubbed == ("torchvision",)
    layers = __import__("sys").modules[f"{remote.package}.fixture_layers"]
    with pytest.raises(Exception, match="pip install torchvision"):
        layers.PIPELINE([])
    assert "torchvision" not in __import__("sys").modules
