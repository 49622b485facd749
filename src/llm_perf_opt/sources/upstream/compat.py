"""transformers version handling for remote code: what is installed, what a snapshot needs, and why it failed.

Upstream DeepSeek-OCR v1 remote code imports transformers 4.46-era Llama attention classes (model-facts §4, §5) that
later releases removed.  Before any remote code runs, its unconditional module-level imports are checked statically:
``from transformers... import NAME`` names the installed transformers lacks, and third-party packages that are not
installed, are reported in one line together with the version the snapshot was written for (``config.json``'s
``transformers_version``).  A failure while executing the code gets the same context.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from collections.abc import Iterable, Mapping
from importlib import metadata

from attrs import field, frozen

from llm_perf_opt.errors import UserError
from llm_perf_opt.sources.upstream.snapshot import Snapshot

__all__ = [
    "HOST_ONLY_PACKAGES",
    "ImportProblems",
    "RemoteCodeImportError",
    "blocking_message",
    "import_failure",
    "installed_transformers",
    "scan_imports",
    "version_tuple",
]

HOST_ONLY_PACKAGES = frozenset({"torchvision", "PIL", "addict", "requests", "tqdm", "matplotlib"})
"""Packages DeepSeek-OCR's remote code imports only for host-side pre/post-processing (``infer``), never in the
model's forward (model-facts §4, §5): when missing they are replaced by stubs that raise if ever called."""


class RemoteCodeImportError(UserError):
    """Remote code that cannot be imported with the installed packages."""


def installed_transformers() -> str | None:
    """The installed transformers version, or None."""
    try:
        return metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return None


def version_tuple(version: str) -> tuple[int, ...]:
    """``"4.46.3"`` -> ``(4, 46, 3)``; a part's leading digits count and the first non-numeric part ends it."""
    parts: list[int] = []
    for piece in version.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
        if digits.end() != len(piece):
            break
    return tuple(parts)


@frozen(kw_only=True)
class ImportProblems:
    """What a static scan of a snapshot's module-level imports found missing."""

    missing_names: tuple[tuple[str, str, str], ...] = field(default=(), metadata={"help": "(file, module, name)"})
    missing_modules: tuple[tuple[str, str], ...] = field(default=(), metadata={"help": "(file, transformers module)"})
    missing_packages: tuple[tuple[str, str], ...] = field(default=(), metadata={"help": "(file, top-level package)"})
    stubbed: tuple[str, ...] = field(default=(), metadata={"help": "host-only packages to stub (missing)"})

    @property
    def blocking(self) -> bool:
        return bool(self.missing_names or self.missing_modules or self.missing_packages)


def _module_level_imports(source: bytes) -> Iterable[ast.Import | ast.ImportFrom]:
    """Unconditional imports: statements directly in the module body (not under if/try/def)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]


def scan_imports(snapshot: Snapshot) -> ImportProblems:
    """Check every unconditional module-level import of the snapshot's code against what is installed."""
    local = {name.removesuffix(".py") for name in snapshot.code}
    names: list[tuple[str, str, str]] = []
    modules: list[tuple[str, str]] = []
    packages: dict[tuple[str, str], None] = {}
    stubbed: set[str] = set()
    for filename, code in snapshot.code.items():
        for node in _module_level_imports(code):
            targets = (
                [(a.name, None) for a in node.names]
                if isinstance(node, ast.Import)
                else [(node.module or "", a.name) for a in node.names]
            )
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                continue
            for module, name in targets:
                top = module.split(".")[0]
                if not top or top in local:
                    continue
                if importlib.util.find_spec(top) is None:
                    if top in HOST_ONLY_PACKAGES:
                        stubbed.add(top)
                    else:
                        packages[(filename, top)] = None
                    continue
                if top == "transformers":
                    problem = _transformers_name(module, name)
                    if problem == "module":
                        modules.append((filename, module))
                    elif problem == "name" and name is not None:
                        names.append((filename, module, name))
    return ImportProblems(
        missing_names=tuple(names),
        missing_modules=tuple(modules),
        missing_packages=tuple(packages),
        stubbed=tuple(sorted(stubbed)),
    )


def _transformers_name(module: str, name: str | None) -> str | None:
    """ "module" if ``module`` does not import, "name" if it lacks ``name``, None if both are fine."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return "module"
    if name is None or name == "*":
        return None
    if hasattr(mod, name):
        return None
    try:
        importlib.import_module(f"{module}.{name}")
    except ImportError:
        return "name"
    return None


def _needs(config: Mapping[str, object]) -> str:
    wanted = config.get("transformers_version")
    return f"transformers {wanted} (config.json transformers_version)" if wanted else "an older transformers"


def blocking_message(snapshot: Snapshot, problems: ImportProblems) -> str:
    """One line: what is missing, what the snapshot was written for, how to fix it."""
    have = installed_transformers() or "not installed"
    parts = [f"{f} imports {n} from {m}" for f, m, n in problems.missing_names]
    parts += [f"{f} imports module {m}" for f, m in problems.missing_modules]
    if parts:
        return (
            f"remote code of {snapshot.source} does not import with transformers {have}: {'; '.join(parts)}; "
            f"it was written for {_needs(snapshot.config)}; fix: run in an environment with that transformers "
            "(e.g. pip install 'transformers==" + str(snapshot.config.get("transformers_version", "4.46.3")) + "', "
            "see scripts/test-transformers-compat)"
        )
    missing = sorted({p for _, p in problems.missing_packages})
    users = ", ".join(f"{p} ({f})" for f, p in problems.missing_packages)
    return (
        f"remote code of {snapshot.source} imports packages that are not installed: {users}; "
        f"fix: pip install {' '.join(missing)}"
    )


def import_failure(snapshot: Snapshot, exc: BaseException) -> RemoteCodeImportError:
    """Wrap an error raised while executing remote code with the transformers versions involved."""
    have = installed_transformers() or "not installed"
    return RemoteCodeImportError(
        f"remote code of {snapshot.source} failed to load with transformers {have} ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else ''}); it was written for {_needs(snapshot.config)}; "
        "fix: run in an environment with that transformers version"
    )
