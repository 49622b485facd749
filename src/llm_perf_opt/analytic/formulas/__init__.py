"""Closed-form cost formulas, one module per layer family (pure functions, keyword-only paper symbols)."""
