from __future__ import annotations

import re
from pathlib import Path

import pytest

from llm_perf_opt.analysis.options import (
    REPORT_ID_PATTERN,
    AnalysisOptions,
    check_attention,
    report_id_for,
    resolve_device,
    resolve_workload,
)
from llm_perf_opt.errors import UnknownIdError, UserError, WorkloadError


def test_report_id_is_derived_from_the_request() -> None:
    a = report_id_for(AnalysisOptions())
    assert re.fullmatch(REPORT_ID_PATTERN, a)
    assert a == report_id_for(AnalysisOptions())
    assert a != report_id_for(AnalysisOptions(device="h200"))
    assert a != report_id_for(AnalysisOptions(max_new_tokens=64))


def test_report_id_ignores_spelling_of_the_dtype_and_the_trust_flag() -> None:
    assert report_id_for(AnalysisOptions(dtype="bfloat16")) == report_id_for(AnalysisOptions(dtype="bf16"))
    assert report_id_for(AnalysisOptions(trust_remote_code=True)) == report_id_for(AnalysisOptions())


def test_files_enter_the_report_id_by_content(tmp_path: Path) -> None:
    one, two = tmp_path / "a.json", tmp_path / "b.json"
    one.write_text("{}")
    two.write_text("{}")
    assert report_id_for(AnalysisOptions(measured=str(one))) == report_id_for(AnalysisOptions(measured=str(two)))
    two.write_text('{"x": 1}')
    assert report_id_for(AnalysisOptions(measured=str(one))) != report_id_for(AnalysisOptions(measured=str(two)))


def test_files_are_recorded_absolute_so_a_golden_finds_them_from_any_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_perf_opt.analysis.options import options_from_payload

    (tmp_path / "meas.json").write_text("{}")
    (tmp_path / "mine.yaml").write_text("x: 1\n")
    monkeypatch.chdir(tmp_path)
    options = AnalysisOptions(measured="meas.json", device_profile="mine.yaml")
    assert options.measured == str(tmp_path / "meas.json")
    assert options.device_profile == str(tmp_path / "mine.yaml")
    # a shipped profile name and a missing file stay as typed (the error names what the user gave)
    assert AnalysisOptions(device_profile="h100-sxm-hf-eager-gate").device_profile == "h100-sxm-hf-eager-gate"
    assert AnalysisOptions(measured="gone.json").measured == "gone.json"
    golden = tmp_path / "golden"
    golden.mkdir()
    monkeypatch.chdir(golden)  # check --golden run from elsewhere: options.json holds the absolute path
    again = options_from_payload({"measured": options.measured}, base=golden)
    assert again.measured == str(tmp_path / "meas.json")


def test_missing_measurement_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"cannot read --measured file .*nope.json"):
        report_id_for(AnalysisOptions(measured=str(tmp_path / "nope.json")))


def test_standard_workload_resolves_to_the_facts_sheet_numbers() -> None:
    w = resolve_workload(AnalysisOptions())
    assert (w.grid, w.image_tokens, w.seq_len, w.max_new_tokens) == ((2, 2), 693, 1 + 693 + 9, 512)


def test_overrides_rederive_tokens_from_the_crop_rule() -> None:
    w = resolve_workload(AnalysisOptions(page=(1920, 1080), max_new_tokens=64, batch_size=4))
    assert w.grid == (4, 2)
    assert w.image_tokens == 273 + 100 * 4 * 2 + 10 * 2  # model-facts §3.2: 1093
    assert (w.max_new_tokens, w.batch_size) == (64, 4)
    assert resolve_workload(AnalysisOptions(mode="base")).seq_len == 1 + 273 + 9


def test_bad_inputs_raise_user_errors() -> None:
    with pytest.raises(UnknownIdError, match="h100-sxm"):
        resolve_device(AnalysisOptions(device="h999"))
    with pytest.raises(WorkloadError):
        resolve_workload(AnalysisOptions(page=(0, 0)))
    with pytest.raises(UnknownIdError):
        resolve_workload(AnalysisOptions(mode="huge"))
    with pytest.raises(UserError, match="flash, eager"):
        check_attention(AnalysisOptions(attention="fast"))
