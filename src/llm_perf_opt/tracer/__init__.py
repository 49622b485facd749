"""Meta-device tracer: module call stack, dispatch op counter, op-formula registry, grouping, stages, decode fit.

Entry point: :func:`llm_perf_opt.tracer.trace.trace_workload` (import it from there: it pulls in torch).  This
package's own namespace and the result classes in :mod:`llm_perf_opt.tracer.result` are torch-free.
"""

from llm_perf_opt.tracer.result import OpLedgerEntry, TracedNode, TraceResult, UnsupportedOp

__all__ = ["DYNAMO_STAND_IN_ENV", "OpLedgerEntry", "TraceResult", "TracedNode", "UnsupportedOp"]

DYNAMO_STAND_IN_ENV = "LLM_PERF_OPT_DYNAMO_STAND_IN"
"""Set to 1 by the ``llm-perf-opt`` command line: traces in that process (and its children) may answer
``import torch._dynamo`` with a stand-in (:mod:`llm_perf_opt.tracer.lazy_dynamo`)."""
