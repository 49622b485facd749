"""The op-formula registry: pure shape formulas (``formulas``), per-family handlers (``matmul``, ``vector``,
``movement``), zero-cost rules (``zero``) and the lookup (``registry.resolve``)."""
