"""The time model's view of the cost tree: node-id helpers and the roots of a tree.

The tree itself is the project's one cost tree, :class:`llm_perf_opt.core.tree.CostTree` (what the tracer and the
analytic model both return); every Cost in it is **inclusive** (docs/architecture.md), and the time model reads each
node's own ops from :meth:`~llm_perf_opt.core.tree.CostTree.exclusive_by_category`.  The id helpers live with the
tree in ``core.tree`` and are named here for the time model's modules and its readers.
"""

from __future__ import annotations

from llm_perf_opt.core.tree import ROOT_ID, STAGES, CostTree, id_components, parent_candidates, stage_of

__all__ = ["ROOT_ID", "STAGES", "id_components", "parent_candidates", "roots_of", "stage_of"]


def roots_of(tree: CostTree) -> list[str]:
    """Nodes that are nobody's child, in sorted order (one, ``root``, for a well-formed tree)."""
    return tree.roots()
