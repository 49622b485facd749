"""Upstream model sources: ``hf-snapshot:PATH`` and ``hf:REPO@REVISION`` (DeepSeek-OCR v1 family remote code).

Resolving one reads (or fetches) and hashes its code but runs none of it.  :meth:`UpstreamModelSource.build`
refuses until the source was trusted (:func:`grant_trust`, the ``--trust-remote-code`` decision), then imports the
code and builds the tree on meta.  :meth:`UpstreamModelSource.make_driver` gives the tracer a driver that runs
upstream's own forward with the meta adapters active (the tracer runs it).
"""

from __future__ import annotations

from typing import Any

import torch
from attrs import evolve, field, frozen
from torch import nn

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import ConfigError, UserError
from llm_perf_opt.sources.deepseek_ocr_v1.inputs import WorkloadLike
from llm_perf_opt.sources.deepseek_ocr_v1.moe import ExpertRouting
from llm_perf_opt.sources.registry import ModelSource
from llm_perf_opt.sources.upstream.adapters import AdapterSet
from llm_perf_opt.sources.upstream.cache import KV_CACHE_RECORD
from llm_perf_opt.sources.upstream.compat import installed_transformers
from llm_perf_opt.sources.upstream.driver import UpstreamDriver
from llm_perf_opt.sources.upstream.hub import HubApi, fetch_snapshot
from llm_perf_opt.sources.upstream.loader import build_meta_model, load_remote_code, loaded_packages
from llm_perf_opt.sources.upstream.records import AdapterRecord, UpstreamProvenance
from llm_perf_opt.sources.upstream.snapshot import Snapshot, read_snapshot
from llm_perf_opt.sources.upstream.trust import require_trust

__all__ = [
    "UpstreamModelSource",
    "grant_trust",
    "resolve_hub",
    "resolve_snapshot",
]


@frozen(kw_only=True)
class UpstreamModelSource(ModelSource):
    """A v1-family remote-code snapshot as a model source (see the module docstring)."""

    snapshot: Snapshot = field(repr=False, metadata={"help": "the hashed snapshot (config and code bytes)"})
    trusted: bool = field(default=False, metadata={"help": "remote code may run (--trust-remote-code given)"})

    def trust(self, trust_remote_code: bool) -> UpstreamModelSource:
        """This source allowed to run its code; a TrustError listing files and hashes unless ``trust_remote_code``."""
        require_trust(self.snapshot, trust_remote_code=trust_remote_code)
        return evolve(self, trusted=True)

    def build(
        self,
        *,
        device: torch.device | str = "meta",
        dtype: torch.dtype = torch.bfloat16,
        attn_implementation: str = "eager",
    ) -> nn.Module:
        """Import the remote code and build its tree on meta; the adapters are checked here already."""
        require_trust(self.snapshot, trust_remote_code=self.trusted)
        if torch.device(device).type != "meta":
            raise UserError(
                f"model source {self.name} is built on the meta device only (no weights are ever read); "
                f"got device {device!r}"
            )
        if attn_implementation != "eager":
            raise UserError(
                f"model source {self.name}: upstream DeepSeek-OCR v1 remote code implements attention as eager "
                "(or flash_attention_2, which needs the flash_attn package and CUDA), not "
                f"{attn_implementation!r}; trace it with --attention eager"
            )
        model = build_meta_model(load_remote_code(self.snapshot), dtype=dtype, attn_implementation="eager")
        AdapterSet(model)  # refuse now, before any tracing, if an adapted spot changed
        return model

    def make_driver(self, model: nn.Module, workload: WorkloadLike, routing: ExpertRouting) -> Any:
        """The tracer driver for ``workload`` (inputs identical to the built-in source's for the same config)."""
        inputs = self.make_inputs(workload)
        return UpstreamDriver(model, inputs, routing, AdapterSet(model), base_size=workload.global_view_size)

    def provenance(self, driver: Any = None) -> UpstreamProvenance:
        """Hashes of the code, the Hub revision and (given the driver that traced) the adapters with use counts."""
        adapters: tuple[AdapterRecord, ...] = ()
        if driver is not None:
            adapters = (*driver.adapters.records(), evolve(KV_CACHE_RECORD, uses=driver.kv_appends[0]))
        remote = loaded_packages().get(self.snapshot.fingerprint)
        return UpstreamProvenance(
            source=self.name,
            hf_repo=self.snapshot.hf_repo,
            hf_revision=self.snapshot.hf_revision,
            config_sha256=self.snapshot.config_sha256,
            code_hashes=self.snapshot.code_hashes,
            weight_files_present=self.snapshot.weight_files,
            transformers_version=installed_transformers(),
            stubbed_packages=remote.stubbed if remote is not None else (),
            adapters=adapters,
        )


def grant_trust(source: ModelSource, trust_remote_code: bool) -> ModelSource:
    """Apply the ``--trust-remote-code`` decision: upstream sources are checked, other sources pass unchanged."""
    if isinstance(source, UpstreamModelSource):
        return source.trust(trust_remote_code)
    trust = getattr(source, "trust", None)
    if callable(trust):
        trusted: ModelSource = trust(trust_remote_code)
        return trusted
    return source


def _v1_config(snapshot: Snapshot) -> DeepseekOCRConfig:
    try:
        return DeepseekOCRConfig.from_hf_config(snapshot.config, variant=snapshot.source)
    except ConfigError as exc:
        raise ConfigError(
            f"model source {snapshot.source}: config.json is not a DeepSeek-OCR v1 family config ({exc}); "
            "hf-snapshot: and hf: sources trace that family's remote code; for DeepSeek-OCR-2 use "
            "--model deepseek-ocr-2"
        ) from None


def _source(snapshot: Snapshot, where: str) -> UpstreamModelSource:
    return UpstreamModelSource(
        name=snapshot.source,
        config=_v1_config(snapshot),
        description=f"remote code {where} ({len(snapshot.code_files)} files, runs only with --trust-remote-code)",
        snapshot=snapshot,
    )


def resolve_snapshot(name: str) -> UpstreamModelSource:
    """``hf-snapshot:PATH`` -> source (code read and hashed, not run)."""
    path = name.partition(":")[2]
    if not path:
        raise UserError("model source hf-snapshot: needs a folder, e.g. hf-snapshot:~/.cache/huggingface/hub/...")
    return _source(read_snapshot(path, source=name), f"from {path}")


def resolve_hub(name: str, *, api: HubApi | None = None, cache_dir: Any = None) -> UpstreamModelSource:
    """``hf:REPO@REVISION`` -> source (config and code fetched into the cache and hashed, not run)."""
    snapshot = fetch_snapshot(name, api=api, cache_dir=cache_dir)
    return _source(snapshot, f"{snapshot.hf_repo}@{snapshot.hf_revision}")
