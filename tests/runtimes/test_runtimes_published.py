"""Published measurements: the committed files load, ids are unique, at most half are fit; bad files one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_perf_opt.errors import UserError
from llm_perf_opt.runtimes.published import load_published, load_published_file

GOOD = """
source: https://example.org
title: t
publisher: p
accessed: 2026-12-06
conditions: c
points:
  - {id: a, kind: single-request, model: deepseek-ocr-v1-base, runtime: vllm, device: a100-40gb, dtype: bf16,
     mode: base, metric: tpot_ms, value: 2.0, role: holdout}
"""


def test_committed_points_load_with_unique_ids_and_at_most_half_fit() -> None:
    sources = load_published()
    points = [p for s in sources for p in s.points]
    assert len(points) >= 8
    assert len({p.point_id for p in points}) == len(points)
    assert 2 * sum(p.role == "fit" for p in points) <= len(points)
    assert {"mi300x", "a100-40gb", "h200"} <= {p.device for p in points}
    assert all(s.conditions and s.source.startswith("https://") for s in sources)


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(GOOD, encoding="utf-8")
    src = load_published_file(path)
    assert src.points[0].metric == "tpot_ms" and not src.points[0].text_only


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("device: a100-40gb", "device: nope"), "device 'nope' is not one of"),
        (("metric: tpot_ms", "metric: speed"), "metric 'speed'"),
        (("value: 2.0", "value: -1"), "value must be a positive number"),
        (("role: holdout", "role: fit"), "at most half"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    (tmp_path / "x.yaml").write_text(GOOD.replace(*change), encoding="utf-8")
    with pytest.raises(UserError, match=message) as info:
        load_published(tmp_path)
    assert "\n" not in str(info.value)


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(UserError, match=r"also in a\.yaml"):
        load_published(tmp_path)
