"""What each DeepSeek-OCR layer class is and how it costs: the text of the ``layers/<Class>.md`` pages.

Data only: one :class:`LayerDoc` per class of the built-in v1 tree (and the torch leaf classes it uses), with the
formulas in readable math, their symbols, the model-facts sections they come from and what they leave out.  The
formulas are the eager op-level counts the tracer and the analytic model both produce (2 FLOPs per
multiply-accumulate; vector FLOPs per output element as in ``analytic/formulas/common.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from attrs import frozen

__all__ = ["CONTAINERS", "CONTAINER_DOC", "LAYER_DOCS", "SYMBOLS", "LayerDoc", "doc_for", "formula_symbols"]


@frozen(kw_only=True)
class LayerDoc:
    """One layer class: role (one line), what it does in DeepSeek-OCR, formulas, symbols, source, assumptions."""

    role: str
    what: str
    formulas: tuple[tuple[str, str], ...] = ()
    symbols: tuple[str, ...] = ()
    source: str = ""
    assumptions: tuple[str, ...] = ()


SYMBOLS: Mapping[str, str] = {
    "T": "rows the layer sees in one call (tokens x views, or 1 per sequence in a decode step)",
    "B": "batch: sequences per forward",
    "a": "bytes per activation element (bf16: 2)",
    "w": "bytes per weight element (bf16: 2)",
    "d_in": "input features of a Linear",
    "d_out": "output features of a Linear",
    "C_in": "input channels of a convolution",
    "C_out": "output channels of a convolution",
    "k_h": "kernel height",
    "k_w": "kernel width",
    "H_out": "output height",
    "W_out": "output width",
    "n": "elements of the tensor the op produces",
    "C": "channels / width normalised over",
    "S": "prefill length: 1 BOS + image tokens + prompt tokens",
    "N": "tokens generated per sequence (max_new_tokens); N-1 decode steps",
    "q": "queries in one call (S at prefill, 1 in a decode step)",
    "k": "keys attended over (S at prefill, S+i in decode step i)",
    "d": "decoder hidden size",
    "V": "vocabulary size",
    "H": "decoder attention heads",
    "H_kv": "decoder key/value heads",
    "D_h": "decoder head dimension",
    "I": "dense MLP intermediate size (layer 0)",
    "I_e": "routed expert intermediate size",
    "I_s": "shared experts' intermediate size (n_shared x I_e, fused into one MLP)",
    "E": "routed experts per MoE layer",
    "K": "experts per token (top-k)",
    "L": "decoder layers",
    "R": "view side in pixels (1024 global view, 640 crop in Gundam modes)",
    "g": "SAM token-grid side of a view: R / 16",
    "g_p": "windowed grid padded to a multiple of 14: 14 * ceil(g / 14)",
    "n_w": "windows per view: (g_p / 14)^2",
    "t": "tokens per attention window: 196 (14 x 14) windowed, g^2 global",
    "s": "rel-pos table side seen by a query grid: 14 windowed, g global",
    "C_s": "SAM width (embed_dim)",
    "h_s": "SAM heads",
    "D_s": "SAM head dimension",
    "M_s": "SAM MLP hidden width (4 x C_s)",
    "C_c": "CLIP width",
    "h_c": "CLIP heads",
    "D_c": "CLIP head dimension",
    "F_c": "CLIP MLP hidden width",
    "L_c": "CLIP blocks",
    "T_c": "CLIP tokens per view: 1 CLS + (R / 64)^2",
    "n_v": "views in one vision call (crops of a page, or 1 global view)",
    "d_p": "projector input: CLIP width + SAM net_3 channels",
    "T_img": "image tokens injected per sequence (crop grid + global grid, with a newline per row, + 1 view separator)",
    "T_p": "tokens the SAM projections see per view: g_p^2 in windowed blocks (padded grid), g^2 in global blocks",
    "taps": "input elements one interpolated output element reads (bicubic: 16)",
}
"""Every symbol a formula uses, with its meaning."""

_BYTES_NOTE = "Bytes are eager op-level: each op reads its operands once and writes its outputs in full."

LAYER_DOCS: Mapping[str, LayerDoc] = {
    "Linear": LayerDoc(
        role="affine projection y = x W^T + b",
        what="Every projection: SAM qkv/proj/MLP, CLIP qkv_proj/out_proj/fc1/fc2, the projector, decoder q/k/v/o, "
        "the (dense, shared, routed) expert MLPs, and lm_head (1280 -> 129,280, on every prefill position).",
        formulas=(
            ("matmul FLOPs", "`2 * T * d_in * d_out`"),
            ("vector FLOPs", "`T * d_out` for the bias add (0 without bias)"),
            ("bytes read", "`T * d_in * a + (d_in * d_out + d_out) * w` (weights read once per call)"),
            ("bytes written", "`T * d_out * a`"),
            ("weights", "`(d_in * d_out + d_out) * w` (bias term only with a bias)"),
        ),
        symbols=("T", "d_in", "d_out", "a", "w"),
        source="model-facts §2 (shapes and parameter counts), §3.7 (closed forms); torch FlopCounterMode mm/addmm",
        assumptions=(
            "No fusion with the following activation or bias; weights are re-read on every call (no cache reuse).",
        ),
    ),
    "Conv2d": LayerDoc(
        role="2-D convolution",
        what="SAM patch embedding (3 -> 768, 16x16 stride 16), neck (1x1 768 -> 256, 3x3 256 -> 256), net_2 "
        "(3x3 stride 2, 256 -> 512) and net_3 (3x3 stride 2, 512 -> 1024). CLIP's patch conv exists but never runs.",
        formulas=(
            ("matmul FLOPs", "`2 * B * H_out * W_out * C_out * C_in * k_h * k_w`"),
            ("vector FLOPs", "`B * C_out * H_out * W_out` with a bias"),
            ("bytes", "read input + weights (+ bias), write `B * C_out * H_out * W_out * a`"),
        ),
        symbols=("B", "C_in", "C_out", "k_h", "k_w", "H_out", "W_out", "a"),
        source="model-facts §2.1 (SAM modules), §3.7 (neck, net_2, net_3 closed forms)",
        assumptions=("Padded taps are counted, as torch counts them.",),
    ),
    "LayerNorm": LayerDoc(
        role="layer normalisation over the last dimension",
        what="SAM blocks' norm1/norm2 (768, eps 1e-6); CLIP layer_norm1/2 and pre_layrnorm (1024, eps 1e-5).",
        formulas=(
            ("vector FLOPs", "`(5 + 2) * T * C` (mean, subtract, square+sum, scale by rstd; weight and bias)"),
            ("bytes", "read `T * C * a + 2 * C * w`, write `T * C * a + 2 * T * 4` (fp32 mean and rstd)"),
        ),
        symbols=("T", "C", "a", "w"),
        source="model-facts §2.1, §2.2; analytic/formulas/common.py layer_norm",
    ),
    "LayerNorm2d": LayerDoc(
        role="channel-wise LayerNorm on NCHW maps (SAM neck)",
        what="neck.1 and neck.3 of SAM (256 channels, eps 1e-6), written as plain tensor ops in eager PyTorch.",
        formulas=(
            ("vector FLOPs", "about `8 * n` for n = B*C*H*W: mean, subtract, square, mean, +eps, sqrt, divide, affine"),
            ("bytes", "every eager op reads its inputs and writes its output in full (one pass per op)"),
        ),
        symbols=("n", "B", "C"),
        source="model-facts §2.1 (neck)",
        assumptions=(_BYTES_NOTE,),
    ),
    "GELU": LayerDoc(
        role="GELU activation (exact erf form)",
        what="The activation inside SAM's MLPBlock.",
        formulas=(
            ("vector FLOPs", "`5 * n`: 0.5 * x * (1 + erf(x / sqrt 2))"),
            ("bytes", "read `n * a`, write `n * a`"),
        ),
        symbols=("n", "a"),
        source="model-facts §2.1; tracer ACTIVATION_FLOPS['gelu']",
    ),
    "SiLU": LayerDoc(
        role="SiLU activation x * sigmoid(x)",
        what="act_fn of every decoder MLP (dense layer 0, shared and routed experts).",
        formulas=(("vector FLOPs", "`5 * n` (sigmoid 4 + multiply)"), ("bytes", "read `n * a`, write `n * a`")),
        symbols=("n", "a"),
        source="model-facts §2.4; tracer ACTIVATION_FLOPS['silu']",
    ),
    "Embedding": LayerDoc(
        role="table lookup",
        what="Decoder token embedding (129,280 x 1280; S rows at prefill, 1 per decode step) and CLIP's 257-entry "
        "position table.",
        formulas=(
            ("FLOPs", "0 (a gather)"),
            ("bytes", "read the selected rows `T * d * w` and the int64 ids `T * 8`, write `T * d * a`"),
        ),
        symbols=("T", "d", "a", "w"),
        source="model-facts §2 (embed_tokens), §3.3 step 1; conventions §2 (gathers read the rows they select)",
        assumptions=("Image positions get a real embedding that injection later overwrites (as upstream does).",),
    ),
    "PatchEmbed": LayerDoc(
        role="SAM patch embedding: 16x16 stride-16 conv, output to NHWC",
        what="Turns a view of R x R pixels into a g x g grid of 768-wide tokens (g = R / 16).",
        formulas=(
            ("matmul FLOPs", "`2 * n_v * g^2 * C_s * (3 * 16 * 16)`"),
            ("vector FLOPs", "`n_v * g^2 * C_s` bias"),
        ),
        symbols=("n_v", "g", "C_s"),
        source="model-facts §2.1, §3.7 (SAM patch conv)",
    ),
    "Attention": LayerDoc(
        role="SAM attention with decomposed relative positions (windowed or global)",
        what="Windowed blocks attend inside 14x14 windows of the zero-padded grid; global blocks (2, 5, 8, 11) over "
        "the whole g x g grid. The rel-pos terms are an additive bias passed to scaled_dot_product_attention.",
        formulas=(
            ("qkv + proj (matmul)", "`2 * n_v * T_p * (C_s * 3 C_s + C_s^2)`"),
            ("rel-pos einsums (matmul)", "`4 * n_v * n_w * h_s * t * s * D_s`"),
            ("scores and values (matmul)", "`4 * n_v * n_w * h_s * t^2 * D_s`"),
            ("softmax (vector)", "`(5 + 1) * n_v * n_w * h_s * t^2` (+1: the additive bias)"),
            ("bias bytes", "`n_v * n_w * h_s * t^2 * a` written once and read by the attention kernel"),
        ),
        symbols=("n_v", "g", "g_p", "n_w", "t", "s", "C_s", "h_s", "D_s", "a"),
        source="model-facts §2.1 (behaviour), §3.7 (windowed and global block closed forms, IO notes)",
        assumptions=(
            "With an additive mask SDPA cannot take the flash kernel; the bias is materialised in activation dtype.",
            "Global blocks at 640 px interpolate the 127-row rel-pos table to 79 rows (counted as interpolation).",
        ),
    ),
    "Block": LayerDoc(
        role="SAM transformer block: pre-LN attention + pre-LN MLP, residuals",
        what="12 blocks: windowed {0,1,3,4,6,7,9,10} and global {2,5,8,11}, grouped separately because they differ.",
        formulas=(
            ("matmul FLOPs", "attention (see Attention) + `2 * n_v * g^2 * 2 * C_s * M_s` (MLP on the unpadded grid)"),
            ("vector FLOPs", "2 LayerNorms + GELU `5 * n_v * g^2 * M_s` + 2 residual adds `2 * n_v * g^2 * C_s`"),
            ("bytes", "window partition/unpartition pad and copy the grid (data movement) besides the children"),
        ),
        symbols=("n_v", "g", "C_s", "M_s"),
        source="model-facts §2.1, §3.7",
    ),
    "MLPBlock": LayerDoc(
        role="SAM MLP: lin1 (768 -> 3072), GELU, lin2 (3072 -> 768)",
        what="The feed-forward half of each SAM block.",
        formulas=(
            ("matmul FLOPs", "`2 * n_v * g^2 * 2 * C_s * M_s`"),
            ("vector FLOPs", "`5 * n_v * g^2 * M_s` (GELU) + biases `n_v * g^2 * (M_s + C_s)`"),
        ),
        symbols=("n_v", "g", "C_s", "M_s"),
        source="model-facts §2.1, §3.7",
    ),
    "ImageEncoderViT": LayerDoc(
        role="SAM-B image encoder (the first vision tower)",
        what="Runs twice per page in crop modes: once on the crop batch (640 px, g = 40) and once on the global view "
        "(1024 px, g = 64). Patch embed, absolute positions (bicubic-resized for 640 px), 12 blocks, neck, "
        "net_2, net_3 -> [n_v, 1024, g/4, g/4].",
        formulas=(
            ("patch conv", "`2 * n_v * g^2 * C_s * 768`"),
            ("blocks", "8 windowed + 4 global (see Block)"),
            ("neck", "`2 * n_v * g^2 * (C_s * 256 + 9 * 256^2)`"),
            ("net_2 + net_3", "`2 * n_v * (g/2)^2 * 9 * 256 * 512 + 2 * n_v * (g/4)^2 * 9 * 512 * 1024`"),
        ),
        symbols=("n_v", "g", "C_s"),
        source="model-facts §2.1, §3.7 (SAM 976.909 GFLOP on the 1024 view; 1302.483 on 4 crops)",
    ),
    "CLIPVisionEmbeddings": LayerDoc(
        role="CLIP embeddings fed by SAM features",
        what="Flattens SAM's [n_v, 1024, h, w] map to tokens, prepends CLS and adds the 257-entry position table, "
        "bicubic-resized to h*w + 1 when h != 16. The CLIP patch conv is never used.",
        formulas=(
            ("FLOPs", "no matmul; interpolation `2 * taps` per resized output element; position add `n_v * T_c * C_c`"),
            ("bytes", "concat and add passes over `n_v * T_c * C_c * a`"),
        ),
        symbols=("n_v", "T_c", "C_c", "a"),
        source="model-facts §2.2 (how it consumes SAM)",
    ),
    "NoTPAttention": LayerDoc(
        role="CLIP self-attention (non-causal, no mask)",
        what="qkv_proj 1024 -> 3072 with bias, SDPA over all T_c tokens of a view, out_proj.",
        formulas=(
            ("matmul FLOPs", "`2 * n_v * T_c * (C_c * 3 C_c + C_c^2) + 4 * n_v * h_c * T_c^2 * D_c`"),
            ("vector FLOPs", "softmax `5 * n_v * h_c * T_c^2` + biases"),
        ),
        symbols=("n_v", "T_c", "C_c", "h_c", "D_c"),
        source="model-facts §2.2, §3.7 (CLIP closed form)",
    ),
    "NoTPFeedForward": LayerDoc(
        role="CLIP MLP: fc1, quick_gelu x * sigmoid(1.702 x), fc2",
        what="The feed-forward half of each CLIP block.",
        formulas=(
            ("matmul FLOPs", "`2 * n_v * T_c * 2 * C_c * F_c`"),
            ("vector FLOPs", "quick_gelu about `6 * n_v * T_c * F_c` (scale, sigmoid, multiply) + biases"),
        ),
        symbols=("n_v", "T_c", "C_c", "F_c"),
        source="model-facts §2.2, §3.7",
    ),
    "NoTPTransformerBlock": LayerDoc(
        role="CLIP block: pre-LN attention + pre-LN MLP, residuals",
        what="24 identical blocks, grouped as one `for` node.",
        formulas=(
            ("matmul FLOPs", "`2 * n_v * T_c * (C_c * 3 C_c + C_c^2 + 2 * C_c * F_c) + 4 * n_v * h_c * T_c^2 * D_c`"),
        ),
        symbols=("n_v", "T_c", "C_c", "F_c", "h_c", "D_c"),
        source="model-facts §2.2, §3.7",
    ),
    "NoTPTransformer": LayerDoc(
        role="CLIP transformer stack (24 blocks)",
        what="Holds the ModuleList of CLIP blocks.",
        formulas=(("matmul FLOPs", "`L_c` x NoTPTransformerBlock"),),
        symbols=("L_c",),
        source="model-facts §2.2",
    ),
    "VitModel": LayerDoc(
        role="CLIP-L vision tower (the second vision tower, fed by SAM)",
        what="Embeddings, pre_layrnorm, 24 blocks; outputs all tokens (no final norm). Runs on the crop batch and on "
        "the global view.",
        formulas=(
            (
                "matmul FLOPs",
                "`L_c * [2 * n_v * T_c * (C_c * 3 C_c + C_c^2 + 2 * C_c * F_c) + 4 * n_v * h_c * T_c^2 * D_c]`",
            ),
        ),
        symbols=("L_c", "n_v", "T_c", "C_c", "F_c", "h_c", "D_c"),
        source="model-facts §2.2, §3.7 (161.716 GFLOP on the 1024 view; 248.019 on 4 crops)",
    ),
    "MlpProjector": LayerDoc(
        role="projector: Linear 2048 -> 1280 on fused vision tokens",
        what="Concatenates CLIP tokens (without CLS) and SAM net_3 tokens along channels and projects them to the "
        "decoder width; newline and separator vectors are then inserted and the result injected into the embeddings.",
        formulas=(("matmul FLOPs", "`2 * n_v * (T_c - 1) * d_p * d`"), ("vector FLOPs", "bias `n_v * (T_c - 1) * d`")),
        symbols=("n_v", "T_c", "d_p", "d"),
        source="model-facts §2.3, §3.3 step 2, §3.7 (projector 1.342 GFLOP at 256 tokens)",
    ),
    "DeepseekV2RMSNorm": LayerDoc(
        role="RMSNorm (fp32 compute, cast back, weight multiply)",
        what="input_layernorm and post_attention_layernorm of every decoder layer, and the final norm "
        "(1280, eps 1e-6).",
        formulas=(
            (
                "vector FLOPs",
                "about `4 * T * d` (square, mean, +eps and rsqrt per row, scale) + weight multiply `T * d`",
            ),
            ("bytes", "fp32 upcast and downcast passes plus the normalised output (eager op by op)"),
        ),
        symbols=("T", "d"),
        source="model-facts §2.4",
        assumptions=(_BYTES_NOTE,),
    ),
    "LlamaRotaryEmbedding": LayerDoc(
        role="RoPE cos/sin from position ids (recomputed in every layer)",
        what="Outer product of positions and 64 inverse frequencies, then cos and sin; theta 10000, rotary dim 128.",
        formulas=(
            ("matmul FLOPs", "`2 * 64 * q` per layer (the outer product)"),
            ("vector FLOPs", "cos and sin of `q * D_h`"),
        ),
        symbols=("q", "D_h"),
        source="model-facts §2.4, §3.7 (extra rotary matmuls)",
    ),
    "LlamaAttention": LayerDoc(
        role="decoder multi-head attention with RoPE and a KV cache",
        what="q/k/v/o projections 1280 -> 1280, 10 heads of 128 (no GQA), rotate-half RoPE, causal softmax in fp32.",
        formulas=(
            ("projections (matmul)", "`2 * q * 4 * d^2`"),
            ("scores and values, dense (matmul)", "`4 * H * q * k * D_h` (FlopCounterMode convention)"),
            ("flash, executed", "`4 * H * (q * k - q (q - 1) / 2) * D_h` (masked half skipped)"),
            ("softmax (vector)", "`5` per score entry computed"),
            ("KV written per layer", "`2 * H_kv * D_h * a` per new token (append only)"),
            ("KV read per decode step", "`2 * H_kv * k * D_h * a` per layer"),
        ),
        symbols=("q", "k", "d", "H", "H_kv", "D_h", "a"),
        source="model-facts §2.4, §3.4 (KV cache), §3.7 (decoder closed forms)",
        assumptions=(
            "The report's attention kernel decides which count feeds time (see the report's assumptions).",
            "KV cache: 2 * L * H_kv * D_h * a bytes per cached token, counted once at the final length S + N - 1.",
        ),
    ),
    "DeepseekV2MLP": LayerDoc(
        role="SwiGLU MLP: down(SiLU(gate(x)) * up(x))",
        what="Dense MLP of layer 0 (I = 6848), the fused shared experts of MoE layers (I_s = 1792) and each routed "
        "expert (I_e = 896, on the tokens routed to it).",
        formulas=(
            ("matmul FLOPs", "`2 * T * 3 * d * I` (I = I, I_s or I_e)"),
            ("vector FLOPs", "SiLU `5 * T * I` + gate*up product `T * I`"),
            ("weights", "`3 * d * I * w`"),
        ),
        symbols=("T", "d", "I", "I_s", "I_e", "w"),
        source="model-facts §2.4 (parameter table), §3.7",
    ),
    "MoEGate": LayerDoc(
        role="MoE router: fp32 scores, softmax over experts, top-k",
        what="Linear 1280 -> 64 in fp32, softmax, greedy top-6; weights are the raw softmax probabilities.",
        formulas=(
            ("matmul FLOPs", "`2 * T * d * E`"),
            ("vector FLOPs", "softmax `5 * T * E` + top-k `T * E` comparisons"),
        ),
        symbols=("T", "d", "E"),
        source="model-facts §2.4 (MoE semantics)",
    ),
    "DeepseekV2MoE": LayerDoc(
        role="mixture-of-experts MLP: gate, routed experts, shared experts",
        what="Layers 1-11. Each token goes to K of E routed experts plus the fused shared experts; outputs are "
        "weighted and summed. Dispatch is driven by the routing model (balanced by default).",
        formulas=(
            ("routed (matmul)", "`2 * T * K * 3 * d * I_e` (T*K expert evaluations, whatever the routing)"),
            ("shared (matmul)", "`2 * T * 3 * d * I_s`"),
            ("gate (matmul)", "`2 * T * d * E`"),
            ("expert weights read", "distinct experts touched x `3 * d * I_e * w`; expected `E * (1 - (1 - K/E)^T)`"),
        ),
        symbols=("T", "K", "E", "d", "I_e", "I_s", "w"),
        source="model-facts §2.4, §2.6 (active parameters), §3.7; expected distinct experts `E * (1 - (1 - K/E)^T)` "
        "(`llm_perf_opt.workloads.routing.expected_distinct_experts`)",
        assumptions=("FLOPs do not depend on routing; the weight bytes (distinct experts per step) do.",),
    ),
    "DeepseekV2DecoderLayer": LayerDoc(
        role="decoder layer: pre-norm attention + pre-norm MLP/MoE, residuals",
        what="Layer 0 has a dense MLP; layers 1-11 an MoE, so they are grouped apart (`{1..11}`).",
        formulas=(
            ("matmul FLOPs, dense layer", "`2 * q * 4 * d^2 + 4 * H * q * k * D_h + 2 * q * 3 * d * I`"),
            (
                "matmul FLOPs, MoE layer",
                "`2 * q * 4 * d^2 + 4 * H * q * k * D_h + 2 * q * (d * E + 3 * d * I_s + K * 3 * d * I_e)`",
            ),
            ("vector FLOPs", "2 RMSNorms + attention softmax + activation + 2 residual adds `2 * q * d`"),
        ),
        symbols=("q", "k", "d", "H", "D_h", "I", "I_s", "I_e", "E", "K"),
        source="model-facts §2.4, §3.7 (48.717 / 50.560 GFLOP per layer at S = 703)",
    ),
    "DeepseekOCRModel": LayerDoc(
        role="the multimodal model body",
        what="Embeds tokens, runs SAM and CLIP on the crops and the global view, projects and injects the image "
        "tokens (masked_scatter), then the 12 decoder layers and the final norm.",
        formulas=(("total", "sum of its children; injection copies `T_img * d * a` bytes"),),
        symbols=("d", "a"),
        source="model-facts §3.3",
    ),
    "DeepseekOCRForCausalLM": LayerDoc(
        role="the root: model body + lm_head",
        what="lm_head runs on every prefill position (no logits-to-keep) and on the one new token per decode step; "
        "logits are upcast to fp32.",
        formulas=(
            ("lm_head prefill (matmul)", "`2 * S * d * V`"),
            ("lm_head per decode step (matmul)", "`2 * d * V`"),
            ("logits bytes", "`S * V * 4` written at prefill (fp32)"),
        ),
        symbols=("S", "d", "V"),
        source="model-facts §2.5, §3.3 step 4, §3.7",
    ),
}
"""Class name -> its page text."""

CONTAINER_DOC = LayerDoc(
    role="container (no ops of its own)",
    what="Holds child modules; its numbers are the sums of its children's.",
    source="conventions §8 (inclusive metrics)",
)

CONTAINERS = frozenset({"ModuleList", "Sequential", "ModuleDict"})
"""Classes that only hold children: no page of their own unless they run ops themselves."""


def doc_for(class_name: str) -> LayerDoc | None:
    """The page text for ``class_name`` (containers share one); None for a class with no written description."""
    if class_name in CONTAINERS:
        return CONTAINER_DOC
    return LAYER_DOCS.get(class_name)


def formula_symbols(doc: LayerDoc) -> tuple[str, ...]:
    """The symbols a page must define: those the doc lists, then every :data:`SYMBOLS` key its formulas use (inside
    backticks), in order of first use."""
    found: dict[str, None] = dict.fromkeys(doc.symbols)
    for _, formula in doc.formulas:
        for part in re.findall(r"`([^`]*)`", formula):
            for token in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", part):
                if token in SYMBOLS:
                    found.setdefault(token, None)
    return tuple(found)
