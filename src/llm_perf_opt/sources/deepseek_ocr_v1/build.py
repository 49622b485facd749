"""Build the DeepSeek-OCR v1 module tree on a device (meta by default) in a given dtype.

On meta nothing is allocated and no initialiser runs: torch's built-in layers (Linear, Conv2d, LayerNorm,
Embedding) call their ``reset_parameters`` from ``__init__``, and on meta those calls only cost time, so a
thread-local :class:`~torch.overrides.TorchFunctionMode` sends tensor factories to the meta device and turns the
``torch.nn.init`` functions and in-place random fills into no-ops while the tree is constructed.
On a real device the weights are random: HF-style normal(0, 0.02)
for Linear/Embedding (biases 0), LayerNorm/RMSNorm weight 1 and bias 0, torch's default for convolutions, and
small normal values for the position tables and view tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import init
from torch.overrides import TorchFunctionMode

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import ConfigError
from llm_perf_opt.sources.deepseek_ocr_v1.clip import CLIPVisionEmbeddings
from llm_perf_opt.sources.deepseek_ocr_v1.decoder import ATTN_IMPLEMENTATIONS, DeepseekV2RMSNorm
from llm_perf_opt.sources.deepseek_ocr_v1.model import DeepseekOCRForCausalLM, DeepseekOCRModel
from llm_perf_opt.sources.deepseek_ocr_v1.moe import MoEGate
from llm_perf_opt.sources.deepseek_ocr_v1.sam import Attention, ImageEncoderViT, LayerNorm2d

__all__ = ["build_model", "init_random_weights"]

_INIT_STD = 0.02  # DeepseekV2Config.initializer_range

_SKIPPED: frozenset[Callable[..., Any]] = frozenset(
    {
        init.kaiming_uniform_,
        init.kaiming_normal_,
        init.xavier_uniform_,
        init.xavier_normal_,
        init.uniform_,
        init.normal_,
        init.trunc_normal_,
        init.constant_,
        init.ones_,
        init.zeros_,
        torch.Tensor.uniform_,
        torch.Tensor.normal_,
        torch.Tensor.zero_,
        torch.Tensor.fill_,
    }
)
# tensor factories the module constructors of this package (and torch's layers) call
_FACTORIES: frozenset[Callable[..., Any]] = frozenset(
    {torch.empty, torch.zeros, torch.ones, torch.full, torch.tensor, torch.arange, torch.randn, torch.rand}
)


class _MetaBuild(TorchFunctionMode):
    """While the tree is constructed: factories default to the meta device, initialisers return their target as is.

    One thread-local mode (instead of ``torch.device("meta")`` plus a second mode) keeps the per-call overhead low.
    """

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func in _SKIPPED:
            return args[0] if args else kwargs["tensor"]
        if func in _FACTORIES and kwargs.get("device") is None:
            kwargs["device"] = _META
        return func(*args, **kwargs)


_META = torch.device("meta")


def build_model(
    config: DeepseekOCRConfig,
    *,
    device: torch.device | str = "meta",
    dtype: torch.dtype = torch.bfloat16,
    attn_implementation: str = "eager",
) -> DeepseekOCRForCausalLM:
    """The full module tree in eval mode with gradients off, parameters and floating buffers in ``dtype``.

    Like upstream (built in fp32, then ``.to(dtype)``), floating buffers such as RoPE's ``inv_freq`` take ``dtype``.
    """
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ConfigError(
            f"unknown attn_implementation {attn_implementation!r}; expected one of {', '.join(ATTN_IMPLEMENTATIONS)}"
        )
    config.check()
    device = torch.device(device)
    if device.type == "meta":
        with _MetaBuild():
            model = DeepseekOCRForCausalLM(config, attn_implementation)
    else:
        with torch.device(device):
            model = DeepseekOCRForCausalLM(config, attn_implementation)
        init_random_weights(model)
    model.to(dtype)
    model.eval()
    model.requires_grad_(False)
    return model


@torch.no_grad()
def init_random_weights(model: nn.Module, *, seed: int = 0) -> None:
    """Random stand-in weights (no checkpoint): see the module docstring for the distributions."""
    torch.manual_seed(seed)
    for module in model.modules():
        _init_module(module)


def _init_module(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Embedding):
        module.weight.normal_(0.0, _INIT_STD)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.zero_()
    elif isinstance(module, nn.LayerNorm | LayerNorm2d | DeepseekV2RMSNorm):
        module.weight.fill_(1.0)
        bias = getattr(module, "bias", None)
        if isinstance(bias, Tensor):
            bias.zero_()
    elif isinstance(module, MoEGate):
        init.kaiming_uniform_(module.weight, a=math.sqrt(5))
    elif isinstance(module, Attention):
        module.rel_pos_h.normal_(0.0, _INIT_STD)
        module.rel_pos_w.normal_(0.0, _INIT_STD)
    elif isinstance(module, ImageEncoderViT):
        module.pos_embed.normal_(0.0, _INIT_STD)
    elif isinstance(module, CLIPVisionEmbeddings):
        module.class_embedding.normal_(0.0, _INIT_STD)
    elif isinstance(module, DeepseekOCRModel):
        std = module.image_newline.shape[0] ** -0.5
        module.image_newline.normal_(0.0, std)
        module.view_seperator.normal_(0.0, std)
