"""The trace cache: keys that change with every part, atomic entries, unreadable entries rebuilt, info and clear."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import attrs
import pytest

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.core import Cost
from llm_perf_opt.tracecache import CachedTrace, TraceCache, TraceCacheWarning, default_cache_dir, key, trace_key
from llm_perf_opt.tracecache.store import FORMAT
from llm_perf_opt.tracer.result import OpLedgerEntry, TracedNode, TraceResult


def small_trace(flops: int = 10) -> TraceResult:
    cost = Cost(matmul_flops=flops, matmul_flops_executed=flops, bytes_read=4, kernels=1)
    root = TracedNode(
        module_id="root",
        name="Root",
        path="",
        qualified_class_name="m.Root",
        stage="other",
        parent_id=None,
        children=(),
        repetition="none",
        repetition_count=None,
        constructor_params={"hidden": 8, "shape": [2, 3], "act": None},
        calls=1,
        cost=cost,
        by_category={"linear": cost},
        weight_bytes=16,
        peak_activation_bytes=32,
        kv_cache_bytes=0,
    )
    entry = OpLedgerEntry(op="aten.mm.default", bucket="counted", rule="mm", reason="2MNK", count=1, cost=cost)
    return TraceResult(
        model="toy",
        workload="one page",
        seq_len=3,
        max_new_tokens=1,
        attention="flash",
        routing="balanced",
        decode_method="none",
        decode_note="",
        nodes={"root": root},
        op_ledger={entry.op: entry},
        unsupported=(),
        uncalled_modules=("unused",),
        categories={"linear": ("Linear",)},
        batch_method="extrapolated",
        batch_note="vision from batch 1, 2, 3",
    )


def entry_for(k: str, trace: TraceResult | None = None) -> CachedTrace:
    return CachedTrace(format=FORMAT, key=k, parts="{}", trace=trace or small_trace(), provenance={"source": "x"})


def test_an_entry_round_trips(tmp_path: Path) -> None:
    cache = TraceCache(tmp_path)
    assert cache.load("abc") is None
    cache.store(entry_for("abc"))
    assert cache.load("abc") == entry_for("abc")
    assert [p.name for p in (tmp_path / "traces").iterdir()] == ["abc.json"]  # no temporary file left behind


PARTS: dict[str, Any] = {
    "source": "deepseek-ocr-v1-base",
    "code": "0" * 64,
    "config": {"hidden_size": 1280},
    "workload": {"batch_size": 1, "max_new_tokens": 512, "page_width": 1024},
    "attention": "flash",
    "routing": {"kind": "balanced", "alpha": 0.0},
}


@pytest.mark.parametrize(
    ("part", "value"),
    [
        ("source", "deepseek-ocr-v1-tiny"),
        ("code", "1" * 64),
        ("config", {"hidden_size": 1281}),
        ("workload", {"batch_size": 2, "max_new_tokens": 512, "page_width": 1024}),
        ("workload", {"batch_size": 1, "max_new_tokens": 64, "page_width": 1024}),
        ("attention", "eager"),
        ("routing", {"kind": "skewed", "alpha": 1.2}),
    ],
)
def test_every_key_part_changes_the_key(part: str, value: Any) -> None:
    assert trace_key({**PARTS, part: value}) != trace_key(PARTS)
    assert trace_key(dict(reversed(list(PARTS.items())))) == trace_key(PARTS)  # order does not matter


def test_the_tracer_version_changes_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = trace_key(PARTS)
    monkeypatch.setattr(key, "TRACER_VERSION", key.TRACER_VERSION + 1)
    assert trace_key(PARTS) != before


def test_code_hash_follows_every_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "sources" / "model"
    pkg.mkdir(parents=True)
    (pkg / "build.py").write_text("WIDTH = 8\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "build.cpython-311.pyc").write_bytes(b"compiled")
    monkeypatch.setattr(key, "_PACKAGE_ROOT", tmp_path)

    def digest() -> str:
        key._code_hash.cache_clear()
        return key.code_hash(["sources/model"])

    first = digest()
    (pkg / "__pycache__" / "build.cpython-311.pyc").write_bytes(b"recompiled")
    assert digest() == first  # caches are not code
    (pkg / "build.py").write_text("WIDTH = 9\n")
    second = digest()
    assert second != first
    (pkg / "data.json").write_text("{}")
    assert digest() != second
    key._code_hash.cache_clear()


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # truncated
        lambda text: "not json at all",
        lambda text: text.replace('"matmul_flops":10', '"matmul_flops":"ten"'),  # corrupted value
        lambda text: text.replace('"key":"abc"', '"key":"abd"'),  # another key's content
        lambda text: text.replace(f'"format":{FORMAT}', '"format":999'),
    ],
)
def test_unreadable_entries_are_dropped_with_a_warning_and_rebuilt(tmp_path: Path, damage: Any) -> None:
    cache = TraceCache(tmp_path)
    cache.store(entry_for("abc"))
    path = cache.path("abc")
    path.write_text(damage(path.read_text()))
    with pytest.warns(TraceCacheWarning, match=r"abc\.json is unreadable .*; rebuilding it"):
        assert cache.load("abc") is None
    assert not path.exists()
    cache.store(entry_for("abc"))
    assert cache.load("abc") == entry_for("abc")


def test_concurrent_writers_leave_one_valid_entry(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_tracecache_store import entry_for, small_trace
        from llm_perf_opt.tracecache import TraceCache
        cache = TraceCache({str(tmp_path)!r})
        for i in range(25):
            cache.store(entry_for("k", small_trace(flops=int(sys.argv[1]))))
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(n)]) for n in (10, 20)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    cache = TraceCache(tmp_path)
    found = cache.load("k")
    assert found is not None and found.trace.root.cost.matmul_flops in (10, 20)
    assert sorted(p.name for p in (tmp_path / "traces").iterdir()) == ["k.json"]


def test_info_and_clear(tmp_path: Path) -> None:
    cache = TraceCache(tmp_path)
    cache.store(entry_for("a"))
    cache.store(entry_for("b"))
    (tmp_path / "traces" / ".a.json.x.tmp").write_text("left by a killed writer")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "f.json").write_text("{}")  # a figure entry an earlier version cached
    info = cache.info()
    assert (info.root, info.entries, info.obsolete) == (tmp_path, 2, 1) and info.bytes > 0
    assert cache.clear().entries == 2
    assert (cache.info().entries, cache.info().obsolete) == (0, 0) and list((tmp_path / "traces").iterdir()) == []
    assert list((tmp_path / "figures").iterdir()) == []


def test_default_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLM_PERF_OPT_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("LLM_PERF_OPT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "llm-perf-opt"


def test_an_unwritable_cache_is_a_warning(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(TraceCacheWarning, match="not writable"):
        TraceCache(blocker).store(entry_for("a"))


def test_entries_are_plain_json(tmp_path: Path) -> None:
    cache = TraceCache(tmp_path)
    cache.store(entry_for("abc"))
    data = json.loads(cache.path("abc").read_text())
    assert data["trace"]["nodes"]["root"]["cost"]["matmul_flops"] == 10
    assert data["trace"]["batch_method"] == "extrapolated"
    assert attrs.fields(DeepseekOCRConfig)  # the config is attrs: the key parts unstructure with the converter


def test_importing_the_cache_does_not_import_torch() -> None:
    code = "import sys, llm_perf_opt.tracecache; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"
