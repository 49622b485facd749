"""``hf:REPO@REVISION``: fetch ``config.json`` and the remote-code ``*.py`` files of a Hub revision, never weights.

The revision (a branch, a tag or a commit) is resolved to its commit hash first; files are cached under
``<cache>/hf/<org>--<name>/<commit>/`` and that hash is what reports record as ``hf_revision``.  A revision given as
a full 40-hex commit that is already cached is read without any network access.

The cache root is ``$LLM_PERF_OPT_CACHE_DIR`` if set, else ``~/.cache/llm-perf-opt`` (this repository's CI points
it at the git-ignored ``third_party/_cache``).  The Hub client is injectable (:class:`HubApi`): tests use a local
stand-in, the default is ``huggingface_hub.HfApi``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from llm_perf_opt.errors import UserError
from llm_perf_opt.sources.upstream.snapshot import Snapshot, read_snapshot

__all__ = ["CACHE_ENV", "HubApi", "HubSpec", "default_cache_dir", "fetch_snapshot", "parse_hf_spec", "wanted_files"]

CACHE_ENV = "LLM_PERF_OPT_CACHE_DIR"
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_MARKER = ".llm-perf-opt-complete.json"


class HubApi(Protocol):
    """The two calls of ``huggingface_hub.HfApi`` this module makes."""

    def model_info(self, repo_id: str, *, revision: str | None = None) -> Any:
        """An object with ``.sha`` (commit hash) and ``.siblings`` (objects with ``.rfilename``)."""
        ...

    def hf_hub_download(
        self, repo_id: str, filename: str, *, revision: str | None = None, local_dir: Any = None
    ) -> str:
        """Download one file into ``local_dir``; return its path."""
        ...


class HubSpec:
    """``hf:REPO@REVISION`` split into its parts (revision defaults to ``main``)."""

    def __init__(self, repo_id: str, revision: str) -> None:
        self.repo_id = repo_id
        self.revision = revision

    @property
    def folder_name(self) -> str:
        return self.repo_id.replace("/", "--")


def parse_hf_spec(name: str) -> HubSpec:
    """Parse ``hf:ORG/NAME[@REVISION]``; anything else is a one-line UserError with the expected form."""
    body = name[3:] if name.startswith("hf:") else name
    repo, _, revision = body.partition("@")
    if not _REPO.match(repo) or (revision == "" and "@" in body):
        raise UserError(
            f"model source {name!r} is not a Hub revision; expected hf:ORG/NAME@REVISION "
            "(e.g. hf:deepseek-ai/DeepSeek-OCR@main or a 40-hex commit)"
        )
    return HubSpec(repo, revision or "main")


def default_cache_dir() -> Path:
    """``$LLM_PERF_OPT_CACHE_DIR`` or ``~/.cache/llm-perf-opt``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "llm-perf-opt"


def wanted_files(names: Sequence[str]) -> list[str]:
    """``config.json`` and the top-level ``*.py`` files of a repository listing (weights never)."""
    return sorted(n for n in names if "/" not in n and (n == "config.json" or n.endswith(".py")))


def fetch_snapshot(name: str, *, api: HubApi | None = None, cache_dir: Path | None = None) -> Snapshot:
    """Resolve ``name`` (``hf:REPO@REVISION``) to a commit, fetch its config and code into the cache, read it."""
    spec = parse_hf_spec(name)
    root = (cache_dir or default_cache_dir()) / "hf" / spec.folder_name
    if _COMMIT.match(spec.revision) and _complete(root / spec.revision):
        return read_snapshot(root / spec.revision, source=name, hf_repo=spec.repo_id, hf_revision=spec.revision)
    hub = api if api is not None else _default_api()
    info = _call(name, lambda: hub.model_info(spec.repo_id, revision=spec.revision))
    commit = str(getattr(info, "sha", "") or "")
    if not _COMMIT.match(commit):
        raise UserError(f"model source {name}: the Hub gave no commit hash for revision {spec.revision!r}")
    folder = root / commit
    if not _complete(folder):
        listing = [str(getattr(s, "rfilename", "")) for s in getattr(info, "siblings", None) or ()]
        files = wanted_files(listing)
        if "config.json" not in files:
            raise UserError(
                f"model source {name}: revision {commit} has no config.json at the top level; expected a "
                "Hugging Face model repository"
            )
        _download(name, hub, spec, commit, files, folder)
    return read_snapshot(folder, source=name, hf_repo=spec.repo_id, hf_revision=commit)


def _complete(folder: Path) -> bool:
    return (folder / _MARKER).is_file()


def _download(name: str, hub: HubApi, spec: HubSpec, commit: str, files: list[str], folder: Path) -> None:
    """Download into a staging folder next to ``folder``, then rename it into place (a reader sees all or none)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{commit[:12]}-", dir=folder.parent))
    try:
        for filename in files:
            path = _call(
                name, lambda f=filename: hub.hf_hub_download(spec.repo_id, f, revision=commit, local_dir=staging)
            )
            if Path(path).resolve() != (staging / filename).resolve():
                shutil.copyfile(path, staging / filename)
        manifest = {"repo_id": spec.repo_id, "requested_revision": spec.revision, "commit": commit, "files": files}
        (staging / _MARKER).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's local_dir bookkeeping
        try:
            staging.rename(folder)
        except OSError:
            if not _complete(folder):  # another process may have won the race; anything else is an error
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _call(name: str, fn: Any) -> Any:
    try:
        return fn()
    except UserError:
        raise
    except Exception as exc:  # network/auth/not-found errors of the Hub client become one line
        raise UserError(
            f"model source {name}: the Hugging Face Hub request failed ({type(exc).__name__}: {exc}); check the "
            "repository id, the revision and network access, or use a local snapshot with hf-snapshot:PATH"
        ) from None


def _default_api() -> HubApi:
    try:
        # lazy: huggingface_hub is optional (the [hf] extra); loaded only when the Hub is asked
        from huggingface_hub import HfApi
    except ImportError:
        raise UserError(
            "hf: model sources need the huggingface_hub package; install it with pip install 'llm-perf-opt[hf]'"
        ) from None
    api: HubApi = HfApi()
    return api
