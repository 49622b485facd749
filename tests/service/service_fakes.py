"""Test-only build backends for the service: small, deterministic reports made of real contract objects.

Passed to ``create_app(backend=...)`` in process, or to the real ``serve`` command through the click context object
(``cli.main(args, obj={"backend": FAKE})``, see ``test_service_server.py``).  Knobs, read in the worker process from
the environment:

* ``SERVICE_FAKES_DELAY_S``: seconds each build sleeps before returning (makes builds slow enough to kill).
* ``SERVICE_FAKES_LOG``: a folder; each build invocation creates one file there (counts builds across processes).
* ``SERVICE_FAKES_PAD_BYTES``: size of an extra ``pad.bin`` file (widens the publish window).

Tests tag requests with ``profile_run_id`` (the fake never looks a measurement up).  A tag starting with ``fail`` makes
the build raise a user error, ``crash`` kills the worker process, ``hog`` asks for 4 GiB at once, ``sleep``
sleeps a minute, ``trace`` raises an error whose text holds a C++-like frame and a server path.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from llm_perf_opt.contracts import (
    AnalyticModuleNode,
    AnalyticModuleSummary,
    DeepSeekOCRAnalyticModel,
    DeepSeekOCRAnalyticReportSummary,
    DeepSeekOCRAnalyticRequest,
    DeepSeekOCRModelSpec,
    ModuleMetricsSnapshot,
    OCRWorkloadProfile,
    OperatorCategory,
    OperatorMetrics,
    to_json,
    unstructure,
)
from llm_perf_opt.errors import UnknownIdError, WorkloadError
from llm_perf_opt.service import BuildBackend


def fake_options(request: DeepSeekOCRAnalyticRequest, allow_remote_code: bool) -> dict[str, Any]:
    if request.workload_profile_id == "unknown-workload":
        raise UnknownIdError("workload profile", request.workload_profile_id, ["dsocr-standard-v1"])
    doc: dict[str, Any] = unstructure(request)
    del doc["force_rebuild"]
    return dict(sorted(doc.items()))


def fake_report_id(options: dict[str, Any]) -> str:
    return "dsocr-" + hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:16]


def _model(report_id: str, options: dict[str, Any], total_ms: float) -> DeepSeekOCRAnalyticModel:
    profile = str(options["workload_profile_id"])
    nodes = [
        AnalyticModuleNode(
            module_id="root",
            name="model",
            qualified_class_name="Fake",
            stage="other",
            children=["prefill"],
            repetition="none",
        ),
        AnalyticModuleNode(
            module_id="prefill",
            name="prefill",
            qualified_class_name="Fake",
            stage="prefill",
            parent_id="root",
            children=[],
            repetition="none",
        ),
    ]
    breakdown = [
        OperatorMetrics(category_id="linear", calls=2, flops_tflops=0.5, io_tb=0.001, share_of_module_flops=1.0)
    ]
    metrics = [
        ModuleMetricsSnapshot(
            module_id=node.module_id,
            profile_id=profile,
            calls=1,
            total_time_ms=total_ms,
            total_flops_tflops=0.5,
            total_io_tb=0.001,
            memory_weights_gb=1.0,
            memory_activations_gb=0.25,
            memory_kvcache_gb=0.0,
            share_of_model_time=1.0,
            operator_breakdown=breakdown,
        )
        for node in nodes
    ]
    return DeepSeekOCRAnalyticModel(
        report_id=report_id,
        model=DeepSeekOCRModelSpec(
            model_id=str(options["model_id"]),
            model_variant=str(options["model_variant"]),
            hidden_size=1280,
            intermediate_size=6848,
            num_layers=12,
            num_attention_heads=10,
            vision_backbone="sam_vit_b",
            uses_moe=True,
        ),
        workload=OCRWorkloadProfile(
            profile_id=profile,
            description="fake",
            seq_len=913,
            base_size=1024,
            image_size=640,
            crop_mode=True,
            max_new_tokens=64,
            doc_kind="synthetic",
            num_pages=1,
        ),
        modules=nodes,
        operator_categories=[
            OperatorCategory(category_id="linear", display_name="Linear", description="matmuls", match_classes=[])
        ],
        module_metrics=metrics,
        predicted_total_time_ms=total_ms,
    )


def fake_build(options: dict[str, Any]) -> dict[str, bytes]:
    log_dir = os.environ.get("SERVICE_FAKES_LOG")
    if log_dir:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        # written beside the folder and renamed in: tests read the folder while builds run, and a file still being
        # written would read as empty
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        staged = Path(log_dir).parent / f".{Path(log_dir).name}-{name}.tmp"
        staged.write_text(json.dumps(options))
        staged.replace(Path(log_dir) / name)
    tag = str(options.get("profile_run_id") or "")
    if tag.startswith("fail"):
        raise WorkloadError(f"profile_run_id {tag!r} asked this fake build to fail; expected any other tag")
    if tag.startswith("crash"):
        os._exit(3)
    if tag.startswith("hog"):
        bytearray(4 << 30)  # 4 GiB at once: refused by RLIMIT_AS before a page is touched
    if tag.startswith("sleep"):
        time.sleep(60)
    if tag.startswith("trace"):
        raise RuntimeError("boom at /usr/lib/secret/site-packages/x.py:12\nframe #0: 0x7f00deadbeef in c10::Error")
    time.sleep(float(os.environ.get("SERVICE_FAKES_DELAY_S", "0")))
    report_id = fake_report_id(options)
    total_ms = 100.0 + int(report_id[-4:], 16) / 1000  # deterministic, differs between requests
    summary = DeepSeekOCRAnalyticReportSummary(
        report_id=report_id,
        model_variant=str(options["model_variant"]),
        workload_profile_id=str(options["workload_profile_id"]),
        predicted_total_time_ms=total_ms,
        top_modules=[
            AnalyticModuleSummary(
                module_id="prefill",
                name="prefill",
                stage="prefill",
                share_of_model_time=1.0,
                total_time_ms=total_ms,
                total_flops_tflops=0.5,
                memory_activations_gb=0.25,
            )
        ],
        notes="fake backend for tests",
    )
    files = {
        "summary.json": to_json(summary).encode(),
        "model.json": to_json(_model(report_id, options, total_ms)).encode(),
        "report.md": f"# {report_id}\n".encode(),
    }
    pad = int(os.environ.get("SERVICE_FAKES_PAD_BYTES", "0"))
    if pad:
        files["pad.bin"] = bytes(pad)
    return files


def fake_prepare() -> None:
    """Warm-up: leave ``<pid>`` in ``$SERVICE_FAKES_WARM`` (the server and each worker run it once at start)."""
    folder = Path(os.environ["SERVICE_FAKES_WARM"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()


WARMED = BuildBackend(
    name="service_fakes_warmed",
    options_for=fake_options,
    report_id_for=fake_report_id,
    build=fake_build,
    prepare=fake_prepare,
)

FAKE = BuildBackend(name="service_fakes", options_for=fake_options, report_id_for=fake_report_id, build=fake_build)
