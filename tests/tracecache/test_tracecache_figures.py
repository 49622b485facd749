"""The figure cache: keys that change with data, code and library versions; unreadable entries dropped with a
warning; info and clear count figures too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_perf_opt.tracecache import TraceCache, TraceCacheWarning
from llm_perf_opt.tracecache.figures import FigureCache, figure_key

FILES = {"plots/a.png": b"\x89PNG\r\n\x1a\n\x00\x01", "plots/a.svg": b"<svg/>"}


def key(**change: object) -> str:
    parts: dict[str, object] = {
        "stem": "a",
        "data": {"x": [1.0, 2.5]},
        "code": ("report/plots.py",),
        "libraries": ("matplotlib",),
    }
    parts.update(change)
    return figure_key(**parts)  # type: ignore[arg-type]


def test_key_changes_with_each_part() -> None:
    base = key()
    assert base == key()
    assert key(stem="b") != base
    assert key(data={"x": [1.0, 2.5000000000000004]}) != base  # floats exactly
    assert key(code=("report/humanize.py",)) != base
    assert key(libraries=("matplotlib", "pillow")) != base


def test_round_trip_and_miss(tmp_path: Path) -> None:
    cache = FigureCache(tmp_path)
    assert cache.load(key()) is None
    cache.store(key(), FILES)
    assert cache.load(key()) == FILES
    assert cache.load(key(stem="b")) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 2],
        lambda raw: raw.replace(b'"format":1', b'"format":99'),
        lambda raw: json.dumps(
            {**json.loads(raw), "files": {"plots/a.svg": {"sha256": "0" * 64, "base64": "PHN2Zy8+"}}}
        ).encode(),
        lambda raw: b"\xff\xfe",
    ],
)
def test_unreadable_entry_is_dropped_with_a_warning(tmp_path: Path, damage: object) -> None:
    cache = FigureCache(tmp_path)
    cache.store(key(), FILES)
    path = cache.path(key())
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.warns(TraceCacheWarning, match="drawing again"):
        assert cache.load(key()) is None
    assert not path.exists()


def test_info_and_clear_count_figures(tmp_path: Path) -> None:
    FigureCache(tmp_path).store(key(), FILES)
    traces = TraceCache(tmp_path)
    assert traces.info().figures == 1
    traces.clear()
    assert traces.info().figures == 0
    assert FigureCache(tmp_path).entries() == []
