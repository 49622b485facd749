"""Execute a snapshot's remote code from the bytes that were hashed, and build its module tree on meta.

The code runs as the package ``transformers_modules.llm_perf_opt_<fingerprint>`` (served by an in-memory import
finder, so relative imports between the snapshot's files work and nothing is written next to them).  The
``transformers_modules.`` prefix is the one transformers itself uses; the tracer strips it from class names.
Host-only packages the model never calls (``torchvision`` for image preprocessing, ...) are stubbed while the code is
imported when they are not installed; a stub raises if anything calls it.  The model is built from ``config.json``
with the snapshot's own config and model classes on the meta device: no weights, no ``from_pretrained``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import linecache
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from attrs import field, frozen
from torch import nn

from llm_perf_opt.errors import ConfigError, UserError
from llm_perf_opt.sources.upstream.compat import (
    RemoteCodeImportError,
    blocking_message,
    import_failure,
    scan_imports,
)
from llm_perf_opt.sources.upstream.snapshot import Snapshot

__all__ = ["PACKAGE_PREFIX", "RemoteCode", "build_meta_model", "load_remote_code", "no_init_weights"]

PACKAGE_PREFIX = "transformers_modules.llm_perf_opt_"
_LOADED: dict[str, RemoteCode] = {}


@frozen(kw_only=True, eq=False)
class RemoteCode:
    """The imported remote code of one snapshot."""

    snapshot: Snapshot
    package: str = field(metadata={"help": "module package the files were imported as"})
    config_class: type[Any] = field(metadata={"help": "auto_map AutoConfig class (or the model's config_class)"})
    model_class: type[nn.Module] = field(metadata={"help": "auto_map AutoModel class"})
    stubbed: tuple[str, ...] = field(default=(), metadata={"help": "host-only packages replaced by stubs"})


class _HostOnly:
    """Stand-in for an attribute of a stubbed host-only package: raises when called."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> _HostOnly:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _HostOnly(f"{self._name}.{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        top = self._name.split(".")[0]
        raise UserError(
            f"remote code called {self._name}, from host-only package {top}, which is not installed and was stubbed "
            f"(model forwards never call it); fix: pip install {top}"
        )

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        return (object,)


class _StubModule(types.ModuleType):
    def __getattr__(self, attr: str) -> _HostOnly:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _HostOnly(f"{self.__name__}.{attr}")


class _BytesLoader(importlib.abc.Loader):
    def __init__(self, source: bytes, filename: str) -> None:
        self.source = source
        self.filename = filename

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        text = self.source.decode("utf-8")
        linecache.cache[self.filename] = (len(text), None, text.splitlines(keepends=True), self.filename)
        module.__file__ = self.filename
        exec(compile(text, self.filename, "exec"), module.__dict__)


class _StubLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _SnapshotFinder(importlib.abc.MetaPathFinder):
    """Serves ``<package>.<file>`` from the snapshot's bytes, and stub modules for missing host-only packages."""

    def __init__(self, package: str, snapshot: Snapshot, stubbed: Sequence[str]) -> None:
        self.package = package
        self.files = {
            name.removesuffix(".py"): (code, str(snapshot.root / name)) for name, code in snapshot.code.items()
        }
        self.stubbed = frozenset(stubbed)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        prefix, _, rest = fullname.rpartition(".")
        if prefix == self.package and rest in self.files:
            code, filename = self.files[rest]
            return importlib.util.spec_from_loader(fullname, _BytesLoader(code, filename), origin=filename)
        if fullname.split(".")[0] in self.stubbed:
            return importlib.util.spec_from_loader(fullname, _StubLoader(), is_package=True)
        return None


@contextlib.contextmanager
def _installed(finder: _SnapshotFinder) -> Iterator[None]:
    before = set(sys.modules)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in set(sys.modules) - before:
            if name.split(".")[0] in finder.stubbed:
                del sys.modules[name]


def _auto_map_class(snapshot: Snapshot, key: str) -> tuple[str, str] | None:
    value = snapshot.auto_map.get(key)
    if not isinstance(value, str) or "." not in value or "--" in value:
        return None
    module, _, cls = value.rpartition(".")
    return module, cls


def load_remote_code(snapshot: Snapshot) -> RemoteCode:
    """Import the snapshot's config and model classes (once per code fingerprint); see the module docstring."""
    cached = _LOADED.get(snapshot.fingerprint)
    if cached is not None:
        return cached
    model_ref = _auto_map_class(snapshot, "AutoModel") or _auto_map_class(snapshot, "AutoModelForCausalLM")
    if model_ref is None:
        raise ConfigError(
            f"model source {snapshot.source}: config.json has no auto_map AutoModel entry naming a class in the "
            "snapshot's own code; expected a remote-code model such as deepseek-ai/DeepSeek-OCR"
        )
    problems = scan_imports(snapshot)
    if problems.blocking:
        raise RemoteCodeImportError(blocking_message(snapshot, problems))
    package = PACKAGE_PREFIX + snapshot.fingerprint[:16]
    pkg = types.ModuleType(package)
    pkg.__path__ = []
    pkg.__package__ = package
    sys.modules[package] = pkg
    finder = _SnapshotFinder(package, snapshot, problems.stubbed)
    try:
        with _installed(finder):
            model_class = _import_class(package, snapshot, *model_ref)
            config_ref = _auto_map_class(snapshot, "AutoConfig")
            config_class = _import_class(package, snapshot, *config_ref) if config_ref else model_class.config_class
    except UserError:
        raise
    except Exception as exc:  # whatever the remote code raised while importing
        raise import_failure(snapshot, exc) from exc
    remote = RemoteCode(
        snapshot=snapshot,
        package=package,
        config_class=config_class,
        model_class=model_class,
        stubbed=problems.stubbed,
    )
    _LOADED[snapshot.fingerprint] = remote
    return remote


def _import_class(package: str, snapshot: Snapshot, module: str, name: str) -> Any:
    if f"{module}.py" not in snapshot.code:
        raise ConfigError(
            f"model source {snapshot.source}: auto_map names {module}.{name}, but {module}.py is not in the snapshot"
        )
    mod = importlib.import_module(f"{package}.{module}")
    try:
        return getattr(mod, name)
    except AttributeError:
        raise ConfigError(
            f"model source {snapshot.source}: {module}.py defines no {name} (named by auto_map)"
        ) from None


def make_config(remote: RemoteCode, *, attn_implementation: str = "eager") -> Any:
    """The snapshot's config object from ``config.json``, with the attention implementation set."""
    config_dict: dict[str, Any] = {k: v for k, v in remote.snapshot.config.items() if k != "auto_map"}
    try:
        config = remote.config_class.from_dict(config_dict)
    except Exception as exc:  # the config class is remote code too
        raise import_failure(remote.snapshot, exc) from exc
    config._attn_implementation = attn_implementation
    return config


@contextlib.contextmanager
def no_init_weights() -> Iterator[None]:
    """transformers' weight-init skipping, wherever this version keeps it (initialisers are no-ops on meta anyway)."""
    for where in ("transformers.initialization", "transformers.modeling_utils"):
        try:
            ctx = importlib.import_module(where).no_init_weights
        except (ImportError, AttributeError):
            continue
        with ctx():
            yield
        return
    yield


def build_meta_model(remote: RemoteCode, *, dtype: torch.dtype, attn_implementation: str = "eager") -> nn.Module:
    """The snapshot's model on the meta device in ``dtype``, eval mode, no gradients; weights are never read."""
    config = make_config(remote, attn_implementation=attn_implementation)
    try:
        with torch.device("meta"), no_init_weights():
            model = remote.model_class(config)
    except UserError:
        raise
    except Exception as exc:
        raise import_failure(remote.snapshot, exc) from exc
    model.to(dtype)
    model.eval()
    model.requires_grad_(False)
    return model


def loaded_packages() -> Mapping[str, RemoteCode]:
    """Fingerprint -> remote code imported in this process (for tests and diagnostics)."""
    return dict(_LOADED)
