"""One walk over the traced root: paths, children and own parameters of every module, shared by all later steps."""

from __future__ import annotations

from torch import nn

__all__ = ["ModelIndex"]


class ModelIndex:
    """``named_modules()`` of ``root`` (first path wins for a shared module), indexed by path."""

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self.entries: list[tuple[str, nn.Module]] = list(root.named_modules())
        self.order = {path: i for i, (path, _) in enumerate(self.entries)}
        self.children: dict[str, list[tuple[str, str, nn.Module]]] = {}
        self.own_params: dict[str, list[tuple[int, int]]] = {}
        self.list_paths: set[str] = set()
        for path, module in self.entries:
            self.children[path] = [
                (name, f"{path}.{name}" if path else name, child) for name, child in module.named_children()
            ]
            self.own_params[path] = [(id(p), p.numel() * p.element_size()) for p in module.parameters(recurse=False)]
            if isinstance(module, nn.ModuleList | nn.ModuleDict):
                self.list_paths.add(path)

    def total_weight_bytes(self) -> int:
        """Unique parameter bytes of the whole root."""
        return sum({pid: n for params in self.own_params.values() for pid, n in params}.values())
