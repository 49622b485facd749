"""Torch-free records of an upstream trace: which code ran (hashes) and which meta adapters acted on it.

Reports carry these so a reader (and ``check``) can see exactly what was traced and what was adapted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import asdict, field, frozen

__all__ = ["AdapterRecord", "UpstreamProvenance"]


@frozen(kw_only=True)
class AdapterRecord:
    """One adapter applied while tracing: what it changed, on which method, checked against what."""

    kind: str = field(metadata={"help": "adapter kind, e.g. item-from-workload, moe-shape-only-dispatch"})
    target: str = field(metadata={"help": "module.Class.method it acts on (or the loader step)"})
    description: str = field(metadata={"help": "what it does instead of the upstream behaviour"})
    source_sha256: str = field(default="", metadata={"help": "AST fingerprint of the target method"})
    reviewed_as: str = field(default="", metadata={"help": "which reviewed code the fingerprint matched, or the check"})
    uses: int = field(default=0, metadata={"help": "times it acted during the trace"})


@frozen(kw_only=True)
class UpstreamProvenance:
    """The code behind an upstream model source."""

    source: str = field(metadata={"help": "model source name (hf-snapshot:PATH, hf:REPO@REV, deepseek-ocr-2)"})
    hf_repo: str | None = field(default=None, metadata={"help": "Hub repository id"})
    hf_revision: str | None = field(default=None, metadata={"help": "resolved commit hash"})
    config_sha256: str = field(default="", metadata={"help": "sha256 of config.json"})
    code_hashes: Mapping[str, str] = field(factory=dict, metadata={"help": "remote-code file -> sha256"})
    weight_files_present: tuple[str, ...] = field(default=(), metadata={"help": "weight files seen, never read"})
    transformers_version: str | None = field(default=None, metadata={"help": "installed transformers"})
    stubbed_packages: tuple[str, ...] = field(default=(), metadata={"help": "host-only packages stubbed at import"})
    adapters: tuple[AdapterRecord, ...] = field(default=(), metadata={"help": "meta adapters applied"})

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready mapping (sorted hashes)."""
        data = asdict(self)
        data["code_hashes"] = dict(sorted(self.code_hashes.items()))
        return data
