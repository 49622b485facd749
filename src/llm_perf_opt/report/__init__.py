"""Assemble, validate and render reports (composes tracer, analytic and perf results)."""
