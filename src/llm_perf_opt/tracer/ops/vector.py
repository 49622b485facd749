"""Handlers for elementwise ops, activations, reductions, softmax and norms: ``vector_flops`` and bytes.

Rule: one FLOP per output element, except where the table says the op does more; each transcendental
(exp, log, erf, tanh, rsqrt, ...) counts as one FLOP.  Per-element factors (``*_FLOPS`` tables) spell out the
textbook formula they count.  Bytes: every tensor operand read (stride-0 dims once), every output written.
Comparisons, selects (``where``, ``masked_fill``) and clamps count one FLOP per output element.
"""

from __future__ import annotations

from collections.abc import Mapping

from llm_perf_opt.tracer.ops.io import OpCall, OpCounts
from llm_perf_opt.tracer.ops.matmul import SOFTMAX_FLOPS_PER_ENTRY
from llm_perf_opt.tracer.ops.rule import Handler, OpTable, add, counted

__all__ = ["ACTIVATION_FLOPS", "ELEMENTWISE_FLOPS", "REDUCTION_FLOPS", "VECTOR_RULES"]

ELEMENTWISE_FLOPS: Mapping[str, int] = {
    **dict.fromkeys(
        [
            "add",
            "sub",
            "rsub",
            "mul",
            "div",
            "neg",
            "abs",
            "sign",
            "sgn",
            "exp",
            "exp2",
            "expm1",
            "log",
            "log2",
            "log10",
            "log1p",
            "sqrt",
            "rsqrt",
            "reciprocal",
            "pow",
            "sin",
            "cos",
            "tan",
            "tanh",
            "asin",
            "acos",
            "atan",
            "atan2",
            "sinh",
            "cosh",
            "erf",
            "erfc",
            "erfinv",
            "floor",
            "ceil",
            "round",
            "trunc",
            "frac",
            "clamp",
            "clamp_min",
            "clamp_max",
            "clip",
            "maximum",
            "minimum",
            "fmax",
            "fmin",
            "remainder",
            "fmod",
            "floor_divide",
            "square",
            "eq",
            "ne",
            "lt",
            "le",
            "gt",
            "ge",
            "logical_and",
            "logical_or",
            "logical_xor",
            "logical_not",
            "bitwise_and",
            "bitwise_or",
            "bitwise_xor",
            "bitwise_not",
            "bitwise_left_shift",
            "bitwise_right_shift",
            "where",
            "masked_fill",
            "isnan",
            "isinf",
            "isfinite",
            "nan_to_num",
            "hypot",
            "copysign",
            "xlogy",
            "heaviside",
        ],
        1,
    ),
    "lerp": 3,  # a + w*(b - a): sub, mul, add
    "addcmul": 2,  # self + v*t1*t2 counted as one multiply-add (scalar v folded)
    "addcdiv": 2,  # self + v*t1/t2 counted as divide + add
    "logaddexp": 4,  # max + log1p(exp(-|a-b|)): sub, exp, log1p, add
}
"""Elementwise ops: FLOPs per output element."""

ACTIVATION_FLOPS: Mapping[str, int] = {
    "relu": 1,  # max(x, 0)
    "relu6": 2,  # min(max(x, 0), 6)
    "leaky_relu": 2,  # x<0 ? a*x : x  (mul, select)
    "hardtanh": 2,  # clamp
    "sigmoid": 4,  # 1/(1+exp(-x)): neg, exp, add, div
    "hardsigmoid": 3,  # clamp(x/6 + 1/2, 0, 1): mul-add, clamp (2)
    "silu": 5,  # x*sigmoid(x): sigmoid (4) + mul
    "hardswish": 4,  # x*hardsigmoid(x): 3 + mul
    "gelu": 5,  # erf form 0.5*x*(1+erf(x/sqrt 2)): div, erf, add, mul, mul (tanh form: 9, see _gelu)
    "elu": 4,  # x<0 ? a*(exp(x)-1) : x: exp, sub, mul, select
    "celu": 5,  # elu with a division
    "selu": 5,  # scale * elu
    "softplus": 4,  # log(1+exp(b*x))/b: mul, exp, log1p, div
    "mish": 7,  # x*tanh(softplus(x)): softplus (4), tanh, mul, +1 for the threshold select
    "log_sigmoid_forward": 5,  # -softplus(-x): neg + softplus
    "glu": 5,  # a*sigmoid(b)
}
"""Activations: FLOPs per output element (the textbook formula in each comment)."""

REDUCTION_FLOPS: Mapping[str, int] = {
    **dict.fromkeys(
        ["sum", "nansum", "amax", "amin", "max", "min", "argmax", "argmin", "prod", "any", "all", "count_nonzero"], 1
    ),
    "mean": 1,  # sum (1/input element) + one divide per output element (added by the handler)
    "nanmean": 1,
    "logsumexp": 3,  # max, exp(x - max) (sub + exp counted as 2 with the sum folded in) -> 3 per input element
    "var": 3,  # sub mean, square, sum (+ the mean pass is folded into the sub)
    "std": 3,
    "var_mean": 3,
    "std_mean": 3,
    "linalg_vector_norm": 2,  # square (|x|^p), sum; the final root per output is left out
    "norm": 2,
    "cumsum": 1,  # one add per element (a scan)
    "cumprod": 1,
    "logcumsumexp": 3,
}
"""Reductions and scans: FLOPs per *input* element (mean also divides once per output element)."""


def _elementwise(factor: int) -> Handler:
    def handler(op: OpCall) -> OpCounts:
        return OpCounts(vec=op.result.numel() * factor, reads=op.operands(), writes=op.outputs())

    return handler


def _gelu(op: OpCall) -> OpCounts:
    # tanh form: 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3))): cube (2), mul, add, mul, tanh, add, mul, mul = 9
    per_element = 9 if op["approximate"] == "tanh" else ACTIVATION_FLOPS["gelu"]
    return OpCounts(vec=op.out.numel() * per_element, reads=((op["self"], -1),), writes=((op.out, -1),))


def _reduction(factor: int, *, divide: bool = False) -> Handler:
    def handler(op: OpCall) -> OpCounts:
        vec = op.first.numel() * factor + (op.result.numel() if divide else 0)
        return OpCounts(vec=vec, reads=op.operands(), writes=op.outputs())

    return handler


def _softmax(op: OpCall) -> OpCounts:
    x = op.first
    return OpCounts(vec=x.numel() * SOFTMAX_FLOPS_PER_ENTRY, reads=((x, -1),), writes=op.outputs())


def _norm(base: int) -> Handler:
    """Normalisation over ``base`` FLOPs per element, +1 for an affine ``weight`` and +1 for a ``bias``."""

    def handler(op: OpCall) -> OpCounts:
        affine = sum(1 for name in ("weight", "bias") if op.has(name) and op[name] is not None)
        return OpCounts(vec=op.first.numel() * (base + affine), reads=op.operands(), writes=op.outputs())

    return handler


_EW = "{f} FLOP(s) per output element; read operands (stride-0 once), write output"
_NORM_LN = "mean (1) + subtract (1) + square-and-sum (2) + scale by rstd (1) per element, +1 per affine term"
_NORM_RMS = "square (1) + sum (1) + scale by rstd (1) per element, +1 for the weight"
_NORM_BN = "subtract mean (1) + scale (1) per element, +1 per affine term (inference statistics)"


def _vector_rules() -> OpTable:
    rules: OpTable = {}
    for name, f in ELEMENTWISE_FLOPS.items():
        add(rules, [name], counted("elementwise", _EW.format(f=f), "elementwise", _elementwise(f)))
    for name, f in ACTIVATION_FLOPS.items():
        if name != "gelu":  # its own handler below: the tanh form counts 9
            add(rules, [name], counted("activation", _EW.format(f=f), "activation", _elementwise(f)))
    add(rules, ["gelu"], counted("activation", "5 FLOPs per element (erf form), 9 (tanh form)", "activation", _gelu))
    for name, f in REDUCTION_FLOPS.items():
        divide = name in {"mean", "nanmean"}
        reason = f"{f} FLOP(s) per input element" + (" + 1 divide per output element" if divide else "")
        add(rules, [name], counted("reduction", reason, "elementwise", _reduction(f, divide=divide)))
    softmax_reason = f"{SOFTMAX_FLOPS_PER_ENTRY} FLOPs per element: max, subtract, exp, sum, divide"
    for name in ("_softmax", "_safe_softmax", "_log_softmax", "softmax", "log_softmax"):
        add(rules, [name], counted("softmax", softmax_reason, "attention", _softmax))
    add(rules, ["native_layer_norm"], counted("norm", _NORM_LN, "norm", _norm(5)))
    add(rules, ["native_group_norm"], counted("norm", _NORM_LN, "norm", _norm(5)))
    add(rules, ["native_batch_norm"], counted("norm", _NORM_BN, "norm", _norm(2)))
    add(rules, ["_native_batch_norm_legit_no_training"], counted("norm", _NORM_BN, "norm", _norm(2)))
    add(rules, ["_fused_rms_norm"], counted("norm", _NORM_RMS, "norm", _norm(3)))
    return rules


VECTOR_RULES: OpTable = _vector_rules()
