"""The one cost tree of the project: what the tracer returns, what the analytic model returns, what the time model
and the validation read.

A :class:`CostTree` maps a node id to a :class:`CostNode`.  Ids (docs/architecture.md): ``root``; the stage names
(``vision``, ``projector``, ``prefill``, ``decode``, ``other``); ``<stage>/<module path>`` with grouped indices
(``prefill/model.layers.{1..11}.mlp``).  Every metric of a node is **inclusive** (its own ops plus all descendants')
and a total over all calls, all members of a group and all decode steps; peaks are maxima, never sums.  The time
model needs each node's *own* ops, which :meth:`CostTree.exclusive_by_category` derives.

The tracer fills every field; the analytic model fills the counted ones (ids, links, calls, costs, weights, KV,
peaks) and, of the descriptive ones, ``name`` and ``path`` (it knows no module classes or constructor arguments).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from attrs import evolve, field, frozen

from llm_perf_opt.contracts.vocab import ParamValue, Repetition, Stage
from llm_perf_opt.core.counts import Cost, rescale_bytes
from llm_perf_opt.core.paths import split_module_path

__all__ = [
    "ROOT_ID",
    "STAGES",
    "CostNode",
    "CostTree",
    "exclusive_by_category",
    "id_components",
    "parent_candidates",
    "stage_of",
]

ROOT_ID = "root"
STAGES: tuple[Stage, ...] = ("vision", "projector", "prefill", "decode", "other")


@frozen(kw_only=True)
class CostNode:
    """One node of a cost tree; metrics are inclusive totals (see the module docstring)."""

    module_id: str = field(metadata={"help": "root | <stage> | <stage>/<path with grouped indices>"})
    name: str = field(default="", metadata={"help": "short display name (last path components)"})
    path: str = field(default="", metadata={"help": "module path with group patterns; '' for the root and stages"})
    qualified_class_name: str = field(
        default="", metadata={"help": "module class, no transformers_modules.<hash> prefix; '' if unknown"}
    )
    stage: Stage = field(metadata={"help": "vision | projector | prefill | decode | other"})
    parent_id: str | None = field(metadata={"help": "parent node id; None for the root"})
    children: tuple[str, ...] = field(metadata={"help": "child node ids in first-call order"})
    repetition: Repetition = field(default="none", metadata={"help": "none | for (sequential) | parfor (independent)"})
    repetition_count: int | None = field(
        default=None, metadata={"help": "members of this group (its own index set); None if none"}
    )
    constructor_params: Mapping[str, ParamValue] = field(
        factory=dict, metadata={"help": "shape-relevant module attributes"}
    )
    calls: int = field(metadata={"help": "forward calls over the workload, all members and decode steps"})
    cost: Cost = field(metadata={"help": "inclusive cost (Cost counters, exact integers)"})
    by_category: Mapping[str, Cost] = field(metadata={"help": "inclusive cost split by operator category id"})
    weight_bytes: int = field(metadata={"help": "unique parameter bytes held under this node"})
    peak_activation_bytes: int = field(metadata={"help": "max live activation bytes while this node runs (a max)"})
    kv_cache_bytes: int = field(metadata={"help": "KV-cache bytes this node holds at the end of its stage"})

    @property
    def category_calls(self) -> dict[str, int]:
        """Operator (kernel) calls per category."""
        return {cat: cost.kernels for cat, cost in self.by_category.items()}

    def at_element_bytes(self, *, counted: int, target: int) -> CostNode:
        """This node with every byte count (costs, categories, weights, peak, KV) moved from ``counted`` to
        ``target`` bytes per element (:func:`~llm_perf_opt.core.counts.rescale_bytes`, a floor)."""
        if counted == target:
            return self

        def size(n: int) -> int:
            return rescale_bytes(n, counted=counted, target=target)

        return evolve(
            self,
            cost=self.cost.at_element_bytes(counted=counted, target=target),
            by_category={
                cat: cost.at_element_bytes(counted=counted, target=target) for cat, cost in self.by_category.items()
            },
            weight_bytes=size(self.weight_bytes),
            peak_activation_bytes=size(self.peak_activation_bytes),
            kv_cache_bytes=size(self.kv_cache_bytes),
        )


class CostTree(Mapping[str, CostNode]):
    """``node id -> CostNode``, parents before children, with the walks and sums every reader needs.

    Read-only.  The analytic model's tree is a subclass that builds its nodes on first read (``AnalyticTree``);
    everything here goes through the mapping interface, so it holds for both.
    """

    def __init__(self, nodes: Mapping[str, CostNode]) -> None:
        self._nodes = nodes

    def __getitem__(self, module_id: str) -> CostNode:
        return self._nodes[module_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} nodes)"

    @classmethod
    def from_categories(cls, by_category: Mapping[str, Mapping[str, Cost]]) -> CostTree:
        """A tree from inclusive costs per node and category alone (hand-built trees, tests): each node's parent is
        its nearest present ancestor id, children in sorted order, every other metric 0."""
        children: dict[str, list[str]] = {nid: [] for nid in by_category}
        for nid in sorted(by_category):
            parent = next((p for p in parent_candidates(nid) if p in by_category), None)
            if parent is not None:
                children[parent].append(nid)
        return cls.from_links(children, by_category)

    @classmethod
    def from_links(
        cls, children: Mapping[str, Sequence[str]], by_category: Mapping[str, Mapping[str, Cost]]
    ) -> CostTree:
        """A tree from explicit child links and inclusive costs per node and category (hand-built trees, tests):
        the nodes are the keys of either map, a node's parent the (last) node listing it, every other metric 0.
        Nothing is checked here; the readers refuse an inconsistent tree."""
        parents = {kid: nid for nid, kids in children.items() for kid in kids}
        ids = list(dict.fromkeys([*children, *by_category]))
        nodes: dict[str, CostNode] = {}
        for nid in ids:
            cats = dict(by_category.get(nid, {}))
            nodes[nid] = CostNode(
                module_id=nid,
                stage=stage_of(nid),
                parent_id=parents.get(nid),
                children=tuple(children.get(nid, ())),
                calls=0,
                cost=Cost.total(cats.values()),
                by_category=cats,
                weight_bytes=0,
                peak_activation_bytes=0,
                kv_cache_bytes=0,
            )
        return cls(nodes)

    @property
    def root(self) -> CostNode:
        return self[ROOT_ID]

    def node(self, module_id: str) -> CostNode:
        """The node with this id (KeyError names the close ids)."""
        try:
            return self[module_id]
        except KeyError:
            stem = module_id.split("/")[0]
            close = [k for k in self if k.startswith(stem)][:8]
            raise KeyError(f"no node {module_id!r}; nodes of that stage include {close}") from None

    def walk(self, module_id: str = ROOT_ID) -> Iterator[CostNode]:
        """Depth-first, parents first, children in their stored order."""
        stack = [module_id]
        while stack:
            node = self[stack.pop()]
            yield node
            stack.extend(reversed(node.children))

    def roots(self) -> list[str]:
        """Nodes that are nobody's child, in sorted order (one, ``root``, for a well-formed tree)."""
        child_ids = {c for node in self.values() for c in node.children}
        return sorted(nid for nid in self if nid not in child_ids)

    def stage_costs(self) -> dict[str, Cost]:
        """Inclusive cost of each stage node present (the root's children)."""
        return {nid: self[nid].cost for nid in self[ROOT_ID].children} if ROOT_ID in self else {}

    def exclusive_by_category(self) -> dict[str, dict[str, Cost]]:
        """Each node's own ops per category (:func:`exclusive_by_category`)."""
        return exclusive_by_category(self)

    def at_element_bytes(self, *, counted: int, target: int) -> CostTree:
        """This tree with every byte count moved from ``counted`` to ``target`` bytes per element
        (:meth:`CostNode.at_element_bytes`)."""
        if counted == target:
            return self
        return CostTree({nid: node.at_element_bytes(counted=counted, target=target) for nid, node in self.items()})


def stage_of(node_id: str) -> Stage:
    """``"prefill/model.layers.0"`` -> ``prefill``; a stage node is its own stage; ``root`` -> ``other``."""
    head = node_id.split("/", 1)[0]
    return head if head in STAGES else "other"


def id_components(path: str) -> list[str]:
    """Split a module path on dots outside braces: ``a.{1..11}.b`` -> ``[a, {1..11}, b]``."""
    return list(split_module_path(path))


def parent_candidates(node_id: str) -> list[str]:
    """Possible parents nearest first: ``s/a.b.c`` -> ``s/a.b``, ``s/a``, ``s``, ``root``; ``s`` -> ``root``."""
    if node_id == ROOT_ID:
        return []
    stage, sep, path = node_id.partition("/")
    if not sep:
        return [ROOT_ID]
    parts = id_components(path)
    return [f"{stage}/{'.'.join(parts[:n])}" for n in range(len(parts) - 1, 0, -1)] + [stage, ROOT_ID]


def _minus(total: Cost, part: Cost, where: str) -> Cost:
    values: dict[str, int] = {}
    for name, mine in total.as_dict().items():
        theirs = getattr(part, name)
        if mine < theirs:
            raise ValueError(f"{where}: children's {name} ({theirs}) exceeds the node's ({mine})")
        values[name] = mine - theirs
    return Cost(**values)


def exclusive_by_category(tree: Mapping[str, CostNode]) -> dict[str, dict[str, Cost]]:
    """Each node's own ops per category: inclusive minus the sum of its children's inclusive; zero costs dropped.

    A node whose children cost more than it does, or that lists a child not in the tree, is an inconsistent input
    (ValueError)."""
    own: dict[str, dict[str, Cost]] = {}
    for nid, node in tree.items():
        missing = [c for c in node.children if c not in tree]
        if missing:
            raise ValueError(f"node {nid!r} lists children not in the tree: {', '.join(missing)}")
        kids = [tree[c].by_category for c in node.children]
        categories = set(node.by_category).union(*kids)
        mine: dict[str, Cost] = {}
        for cat in sorted(categories):
            spent = Cost.total(k.get(cat, Cost()) for k in kids)
            rest = _minus(node.by_category.get(cat, Cost()), spent, f"node {nid!r} category {cat!r}")
            if rest != Cost():
                mine[cat] = rest
        own[nid] = mine
    return own
