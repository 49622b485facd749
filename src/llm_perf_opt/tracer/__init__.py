"""Meta-device tracer: module call stack, dispatch op counter, op-formula registry, grouping, stages, decode fit.

Entry point: :func:`llm_perf_opt.tracer.trace.trace_workload` (imported lazily: it pulls in torch and the
built-in model).  The result classes in :mod:`llm_perf_opt.tracer.result` are torch-free.
"""

from llm_perf_opt.tracer.result import OpLedgerEntry, TracedNode, TraceResult, UnsupportedOp

__all__ = ["OpLedgerEntry", "TraceResult", "TracedNode", "UnsupportedOp"]
