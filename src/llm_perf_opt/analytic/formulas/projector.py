"""Feature fusion, projector, view tokens and injection (model-facts §2.3, §3.3), eager op-level convention.

Symbols: ``B`` views in one encoder call, ``n`` patch tokens per view (``t^2``), ``D_clip`` CLIP width (1024),
``C_sam`` SAM ``net_3`` channels (1024), ``d`` decoder width (1280), ``i``/``j`` crop grid (cols/rows), ``t_c``
and ``t_g`` token-grid sides of a crop and of the global view, ``N_img`` image tokens of one page, ``S`` prefill
length, ``a`` bytes per element.
"""

from __future__ import annotations

from llm_perf_opt.analytic.formulas.common import copy, linear
from llm_perf_opt.core import Cost

__all__ = ["feature_concat", "injection", "projector_linear", "view_tokens"]


def feature_concat(*, B: int, n: int, D_clip: int, C_sam: int, a: int) -> Cost:
    """``cat([CLIP tokens without CLS ; SAM tokens flattened], -1)``: read both, write ``B*n*(D_clip+C_sam)*a``.

    Source: model-facts §2.3 (CLIP tokens without CLS first, SAM tokens second). Leaves out nothing.
    """
    return copy(read=B * n * (D_clip + C_sam) * a, written=B * n * (D_clip + C_sam) * a)


def projector_linear(*, B: int, n: int, d_in: int, d: int, a: int) -> Cost:
    """``MlpProjector.layers`` (Linear ``d_in -> d`` with bias) on ``B*n`` tokens: ``2*B*n*d_in*d`` (model-facts §3.7
    ``2*N*2048*1280``, N = 656 for Gundam 2x2).
    Leaves out nothing.
    """
    return linear(N=B * n, d_in=d_in, d_out=d, bias=True, a=a, w=a)


def view_tokens(*, i: int, j: int, t_c: int, t_g: int, d: int, a: int) -> Cost:
    """Newline and separator tokens of one page (``image_features``), in injection order.

    With crops (``i*j > 1``): re-tile the crop tokens into a ``(t_c*j) x (t_c*i)`` grid (a copy unless ``i == 1``),
    append one ``image_newline`` per row (a concat; the newline vector is read once, a weight); the global grid
    gets its newlines the same way; then one concat of local rows, global rows and the ``view_seperator``.
    Without crops only the global part and the separator.
    Source: model-facts §3.2-§3.3 (injection order: local grid, global grid, separator). Leaves out nothing.
    """
    row, g_tok = d * a, t_g * t_g
    global_rows = copy(read=g_tok * row + row, written=t_g * (t_g + 1) * row, weight=row)
    if i * j <= 1:
        return global_rows + copy(read=t_g * (t_g + 1) * row + row, written=(t_g * (t_g + 1) + 1) * row, weight=row)
    n_local = i * j * t_c * t_c
    local_rows_n = (t_c * j) * (t_c * i + 1)
    cost = Cost()
    if i > 1:
        cost += copy(read=n_local * row, written=n_local * row)
    cost += copy(read=n_local * row + row, written=local_rows_n * row, weight=row)
    n_img = local_rows_n + t_g * (t_g + 1) + 1
    final = copy(read=(n_img - 1) * row + row, written=n_img * row, weight=row)
    return cost + global_rows + final


def injection(*, N_img: int, S: int, d: int, a: int) -> Cost:
    """Hand the page's ``N_img`` feature rows to the embeddings: a one-tensor ``cat`` (a copy) and the in-place
    ``masked_scatter_`` that reads the ``[S, 1]`` bool mask and the rows and writes ``N_img*d*a``.
    Source: model-facts §3.3 step 3 (``masked_scatter_``). Leaves out the data-dependent mask count (taken as
    ``N_img`` rows).
    """
    rows = N_img * d * a
    return copy(read=rows, written=rows) + copy(read=S + rows, written=rows)
