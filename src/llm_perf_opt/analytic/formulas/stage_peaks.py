"""Peak live activation bytes of each stage of the built-in v1 model: the tracer's live set, in closed form.

A stage's peak is the highest total of live non-parameter, non-KV tensor storage while the stage runs, counted the
way the tracer and ``measure.live_bytes`` count it (every storage an op allocates, from allocation until its last
tensor dies; the pass's inputs included).  Each formula below is the live set at the stage's highest point as
``measure.peak_explain`` lists it (by producing op), derived on the tiny and base configs in every resolution mode,
flash and eager, batch 1-4, and checked equal to the trace byte for byte (``tests/analytic``).

Symbols: ``B`` batch rows (one page each), ``S`` prefill length, ``K`` keys of the last decode step (``S + N - 1``),
``D`` decoder width, ``H`` decoder heads, ``h_d`` head width, ``V`` vocabulary, ``n_e`` projector width, ``N_img``
image tokens of one page, ``G``/``c`` global-view and crop sides (px), ``n_c`` crops per page (``i`` columns),
``t_g``/``t_c`` token-grid sides of the global view and of one crop (after SAM's 16x downsampling), ``E``/``H_s``/``p``
SAM width, heads and patch size, ``C_s`` SAM ``net_3`` channels, ``D_c`` CLIP width, ``a`` bytes per activation
element (the fp32 upcasts are 4 bytes, token ids and positions int64, the image mask bool, whatever ``a`` is).

A text-only request has no vision or projector stage; its prefill and decode peaks are the same formulas without
images.  Leaves out: memory a kernel uses inside itself (workspaces), allocator rounding and caching
(``perf.memory``).
"""

from __future__ import annotations

__all__ = [
    "decode_peak",
    "pass_inputs",
    "prefill_peak",
    "projector_peak",
    "sam_global_attention_live",
    "vision_peak",
]

_F32 = 4
_I64 = 8


def pass_inputs(*, B: int, S: int, n_c: int, c: int, G: int, a: int) -> int:
    """The prefill pass's inputs, live throughout: ``B*S*(8 + 1 + 8)`` (input ids, image mask, positions) plus the
    images ``B*(n_c*3*c^2 + 3*G^2)*a`` (crops and the global view).
    """
    return B * S * (2 * _I64 + 1) + B * (n_c * 3 * c * c + 3 * G * G) * a


def sam_global_attention_live(*, B_v: int, R: int, p: int, E: int, H_s: int, eager: bool, a: int) -> int:
    """Live bytes inside a SAM global-attention block on ``B_v`` views of side ``R`` (``T = (R/p)^2`` tokens).

    Flash (SDPA with the decomposed rel-pos bias as mask): the mask ``B_v*H_s*T^2*a``, the rel-pos terms
    ``B_v*H_s*T*2*sqrt(T)*a``, qkv ``3*B_v*T*E*a`` and four ``B_v*T*E*a`` tensors (block input, norm1, attention
    output, proj), and with ``B_v > 1`` the head-split copy of qkv ``3*B_v*T*E*a`` (one view splits as a view).
    Eager (math SDPA): five ``T^2`` tensors (scores, scaled/biased scores, softmax), the fp32 q/k/v
    ``3*B_v*T*E*4``, the scaled q and k ``2*B_v*T*E*a`` and the same rel-pos, qkv and block tensors but for the
    proj output.  Source: live sets of ``model.sam_model.blocks.*.attn`` (``measure.peak_explain``).
    """
    t = R // p
    T = t * t
    u = B_v * T * E * a
    scores = B_v * H_s * T * T * a
    rel = B_v * H_s * T * 2 * t * a
    split = 3 * u if B_v > 1 else 0  # q/k/v split by head: a copy unless there is one view
    if eager:
        return 5 * scores + rel + 3 * u + split + 3 * B_v * T * E * _F32 + 2 * u + 2 * u
    return scores + rel + 7 * u + split


def vision_peak(
    *,
    B: int,
    S: int,
    D: int,
    n_e: int,
    N_img: int,
    n_c: int,
    c: int,
    G: int,
    t_c: int,
    p: int,
    E: int,
    H_s: int,
    eager: bool,
    a: int,
) -> int:
    """``inputs + B*S*D*a + [B > 1]*N_img*n_e*a + max(global, crops)``.

    The text embeddings (computed before the encoders) and the previous row's finished image features stay alive
    while a row is encoded (earlier rows' are injected and freed).  The highest point is a SAM global-attention
    block: on the global view, with this page's projected crop tokens ``n_c*t_c^2*n_e*a`` alive, or on the batch of
    ``n_c`` crops, whichever is larger.  Leaves out nothing else: CLIP and windowed blocks are always lower.
    """
    held = pass_inputs(B=B, S=S, n_c=n_c, c=c, G=G, a=a) + B * S * D * a + min(B - 1, 1) * N_img * n_e * a
    on_global = n_c * t_c * t_c * n_e * a + sam_global_attention_live(B_v=1, R=G, p=p, E=E, H_s=H_s, eager=eager, a=a)
    on_crops = sam_global_attention_live(B_v=n_c, R=c, p=p, E=E, H_s=H_s, eager=eager, a=a) if n_c else 0
    return held + max(on_global, on_crops)


def projector_peak(
    *,
    B: int,
    S: int,
    D: int,
    n_e: int,
    N_img: int,
    n_c: int,
    i: int,
    c: int,
    G: int,
    t_c: int,
    t_g: int,
    C_s: int,
    D_c: int,
    eager: bool,
    a: int,
) -> int:
    """``inputs + B*S*D*a + max(features, mask)``.

    Features (flash and eager): with the previous row's features ``[B > 1]*N_img*n_e*a`` alive, either the global
    view's projector output while its SAM ``net_3`` output ``t_g^2*C_s*a``, CLIP output ``(t_g^2+1)*D_c*a`` and their
    concat ``t_g^2*(C_s+D_c)*a`` are alive (plus the crops' projected tokens), or, with crops, the page's final
    concat: its pieces and result ``(2*N_img - 1)*n_e*a``, both projector outputs ``(n_c*t_c^2 + t_g^2)*n_e*a`` and
    the re-tiled crop copy ``n_c*t_c^2*n_e*a`` (none with one crop column, ``i = 1``: the re-tiling is a view).
    Eager adds the causal mask build after the last projector call: the fp32 fill ``4*S^2``, its ``a*S^2`` cast
    and the ``int64`` positions ``8*S``, once for the batch.
    """
    held = pass_inputs(B=B, S=S, n_c=n_c, c=c, G=G, a=a) + B * S * D * a
    prev = min(B - 1, 1) * N_img * n_e * a
    local = n_c * t_c * t_c
    tg2 = t_g * t_g
    at_global = prev + local * n_e * a + (tg2 * C_s + (tg2 + 1) * D_c + tg2 * (C_s + D_c) + tg2 * n_e) * a
    retiled = local if i > 1 else 0
    at_concat = prev + ((2 * N_img - 1) + local + tg2 + retiled) * n_e * a if n_c else 0
    mask = (_F32 + a) * S * S + _I64 * S if eager else 0
    return held + max(at_global, at_concat, mask)


def prefill_peak(*, inputs: int, B: int, S: int, D: int, H: int, h_d: int, V: int, eager: bool, a: int) -> int:
    """``inputs + max(logits, eager attention)``.

    Logits: the final norm's output ``B*S*D*a``, the ``lm_head`` logits ``B*S*V*a`` and their fp32 upcast
    ``B*S*V*4``.  Eager attention (second layer): fp32 scores and softmax ``2*B*H*S^2*4``, the masked scores
    ``B*H*S^2*a``, the causal mask ``S^2*a``, the embeddings, residual, norm output and rotated q ``4*B*S*D*a`` and
    rope cos/sin ``2*B*S*h_d*a``.  Flash attention's live set is always below the logits.
    """
    logits = B * S * (V * a + V * _F32 + D * a)
    attention = B * H * S * S * (2 * _F32 + a) + S * S * a + B * S * (4 * D + 2 * h_d) * a if eager else 0
    return inputs + max(logits, attention)


def decode_peak(*, B: int, K: int, D: int, H: int, h_d: int, V: int, eager: bool, a: int) -> int:
    """The last decode step (longest cache): ``max(logits, eager attention)`` plus the step's ids and positions.

    Inputs ``16*B``; logits ``B*(V*a + V*4 + D*a)``; eager attention ``B*H*K*(2*4 + a)`` (fp32 scores and softmax,
    scaled scores) plus ``B*(4*D + 2*h_d)*a`` (embedding, residual, norm, rotated q; rope cos/sin).
    """
    logits = B * (V * a + V * _F32 + D * a)
    attention = B * H * K * (2 * _F32 + a) + B * (4 * D + 2 * h_d) * a if eager else 0
    return 2 * _I64 * B + max(logits, attention)
