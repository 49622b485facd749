"""Device profiles shipped with the tool, loadable by name (``--device-profile h100-sxm-hf-eager-gate``).

Each file in ``perf/profiles/`` was written by ``llm-perf-opt calibrate`` from the measurements committed under
``benchmarks/measurements`` (the file's first lines say which).  A ``--device-profile`` value that names an existing
file is that file; otherwise it must be one of these names.
"""

from __future__ import annotations

from pathlib import Path

from llm_perf_opt.errors import UnknownIdError

__all__ = ["PROFILES_DIR", "named_profiles", "resolve_profile_path"]

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


def named_profiles() -> tuple[str, ...]:
    """Names of the shipped profiles (file stems), sorted."""
    return tuple(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))


def resolve_profile_path(value: str) -> Path:
    """``value`` as a path when that file exists, else the shipped profile of that name; neither is an
    :class:`UnknownIdError` listing the names."""
    path = Path(value)
    if path.is_file():
        return path
    shipped = PROFILES_DIR / f"{value}.yaml"
    if shipped.is_file():
        return shipped
    raise UnknownIdError("device profile (not a file, not a shipped name)", value, named_profiles())
