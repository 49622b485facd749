"""DeepSeek-OCR v1 top-level modules: ``DeepseekOCRModel`` and ``DeepseekOCRForCausalLM`` (model-facts §2, §3.3-§3.4).

Forward API (one call per prefill or decode step)::

    out = model(input_ids, images=[ImageInputs(...)], images_seq_mask=mask, image_grid=[(cols, rows)],
                past_key_values=cache, position_ids=pos, routing=routing)
    out.logits            # fp32 [B, q, vocab]: lm_head over every input position
    out.past_key_values   # the KVCache, now holding past + q positions

Everything upstream decides from tensor data is an explicit input here: ``images`` (None: no image), each row's
``crops`` (None: no local views), ``image_grid`` (the crop grid as Python ints), ``routing`` (MoE slice sizes).
The vision branch runs only when ``images`` is given and the input has more than one token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import WorkloadError
from llm_perf_opt.sources.deepseek_ocr_v1.cache import KVCache
from llm_perf_opt.sources.deepseek_ocr_v1.clip import MlpProjector, VitModel
from llm_perf_opt.sources.deepseek_ocr_v1.decoder import DeepseekV2DecoderLayer, DeepseekV2RMSNorm, causal_mask
from llm_perf_opt.sources.deepseek_ocr_v1.inputs import ImageInputs
from llm_perf_opt.sources.deepseek_ocr_v1.moe import ExpertRouting
from llm_perf_opt.sources.deepseek_ocr_v1.sam import ImageEncoderViT

__all__ = ["CausalLMOutput", "DeepseekOCRForCausalLM", "DeepseekOCRModel"]


class CausalLMOutput(NamedTuple):
    """``(logits fp32 [B, q, vocab], past_key_values KVCache)``."""

    logits: Tensor
    past_key_values: KVCache


class DeepseekOCRModel(nn.Module):
    """Embedding, 12 decoder layers, final norm, plus the vision stack (SAM, CLIP, projector, view tokens)."""

    def __init__(self, config: DeepseekOCRConfig, attn_implementation: str = "eager") -> None:
        super().__init__()
        self.config = config
        self.attn_implementation = attn_implementation
        self.padding_idx = None
        self.vocab_size = config.vocab_size
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(
            DeepseekV2DecoderLayer(config, i, attn_implementation) for i in range(config.num_hidden_layers)
        )
        self.norm = DeepseekV2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.sam_model = ImageEncoderViT(config.sam)
        self.vision_model = VitModel(config.clip)
        self.projector = MlpProjector(config.projector)
        self.image_newline = nn.Parameter(torch.empty(config.projector.n_embed))
        self.view_seperator = nn.Parameter(torch.empty(config.projector.n_embed))

    def forward(
        self,
        input_ids: Tensor,
        *,
        images: Sequence[ImageInputs] | None = None,
        images_seq_mask: Tensor | None = None,
        image_grid: Sequence[tuple[int, int]] | None = None,
        past_key_values: KVCache,
        position_ids: Tensor | None = None,
        routing: ExpertRouting | None = None,
    ) -> tuple[Tensor, KVCache]:
        """Return the final hidden states ``[B, q, hidden]`` and the updated cache."""
        inputs_embeds = self.embed_tokens(input_ids)
        batch, q_len = input_ids.shape
        if images is not None and q_len != 1:
            self._inject_images(inputs_embeds, images, images_seq_mask, image_grid)
        past_len = past_key_values.seq_length(0)
        if position_ids is None:
            position_ids = torch.arange(past_len, past_len + q_len, dtype=torch.long, device=input_ids.device)
            position_ids = position_ids.unsqueeze(0)
        mask = None
        if q_len > 1 and (self.attn_implementation == "eager" or past_len > 0):
            mask = causal_mask(
                batch=batch, q_len=q_len, past_len=past_len, dtype=inputs_embeds.dtype, device=inputs_embeds.device
            )
        hidden = inputs_embeds
        for layer in self.layers:
            hidden, past_key_values = layer(
                hidden, attention_mask=mask, position_ids=position_ids, past_key_value=past_key_values, routing=routing
            )
        return self.norm(hidden), past_key_values

    # -- vision ------------------------------------------------------------------------------------
    def _inject_images(
        self,
        inputs_embeds: Tensor,
        images: Sequence[ImageInputs],
        images_seq_mask: Tensor | None,
        image_grid: Sequence[tuple[int, int]] | None,
    ) -> None:
        """Overwrite the image-token rows of ``inputs_embeds`` in place (``masked_scatter_``), row by row."""
        batch = inputs_embeds.shape[0]
        if images_seq_mask is None or image_grid is None or len(images) != batch or len(image_grid) != batch:
            raise WorkloadError(
                f"images need images_seq_mask and one image_grid entry per batch row; got {len(images)} image "
                f"entries, {'no' if image_grid is None else len(image_grid)} grids, batch {batch}"
            )
        with torch.no_grad():
            for row, (views, grid) in enumerate(zip(images, image_grid, strict=True)):
                features = torch.cat([self.image_features(views, grid)], dim=0)
                inputs_embeds[row].masked_scatter_(images_seq_mask[row].unsqueeze(-1), features)

    def image_features(self, views: ImageInputs, grid: tuple[int, int]) -> Tensor:
        """Projected vision tokens for one image in injection order: local grid, global grid, separator.

        Each grid gets one ``image_newline`` per row; ``[N_img, n_embed]`` (model-facts §3.2-§3.3).
        """
        if views.crops is None:
            global_rows = self._with_newlines(self._encode(views.global_view))
            return torch.cat([global_rows, self.view_seperator[None, :]], dim=0)
        cols, rows = grid
        if cols * rows != views.crops.shape[0]:
            raise WorkloadError(
                f"crop grid {cols}x{rows} needs {cols * rows} crops, got {views.crops.shape[0]}; pass the grid "
                "the crops were cut with"
            )
        local = self._encode(views.crops)
        global_ = self._encode(views.global_view)
        global_rows = self._with_newlines(global_)
        _, tokens, dim = local.shape
        side = math.isqrt(tokens)
        tiled = local.view(rows, cols, side, side, dim).permute(0, 2, 1, 3, 4).reshape(rows * side, cols * side, dim)
        local_rows = torch.cat([tiled, self.image_newline[None, None, :].expand(rows * side, 1, dim)], dim=1)
        return torch.cat([local_rows.view(-1, dim), global_rows, self.view_seperator[None, :]], dim=0)

    def _encode(self, pixels: Tensor) -> Tensor:
        """SAM -> CLIP (fed with SAM features) -> concat [CLIP without CLS ; SAM flattened] -> projector."""
        sam_features = self.sam_model(pixels)
        clip_features = self.vision_model(pixels, sam_features)
        fused = torch.cat((clip_features[:, 1:], sam_features.flatten(2).permute(0, 2, 1)), dim=-1)
        projected: Tensor = self.projector(fused)
        return projected

    def _with_newlines(self, features: Tensor) -> Tensor:
        """``[1, h*w, n]`` -> ``[h*(w+1), n]``: one ``image_newline`` appended to every row of the square grid."""
        _, tokens, dim = features.shape
        side = math.isqrt(tokens)
        grid = features.view(side, side, dim)
        grid = torch.cat([grid, self.image_newline[None, None, :].expand(side, 1, dim)], dim=1)
        return grid.view(-1, dim)


class DeepseekOCRForCausalLM(nn.Module):
    """Root module: ``model`` (:class:`DeepseekOCRModel`) and an untied ``lm_head`` applied to every position."""

    def __init__(self, config: DeepseekOCRConfig, attn_implementation: str = "eager") -> None:
        super().__init__()
        self.config = config
        self.model = DeepseekOCRModel(config, attn_implementation)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(
        self,
        input_ids: Tensor,
        *,
        images: Sequence[ImageInputs] | None = None,
        images_seq_mask: Tensor | None = None,
        image_grid: Sequence[tuple[int, int]] | None = None,
        past_key_values: KVCache | None = None,
        position_ids: Tensor | None = None,
        routing: ExpertRouting | None = None,
    ) -> CausalLMOutput:
        """Prefill (images optional) or decode step; see the module docstring."""
        if past_key_values is None:
            past_key_values = self.new_cache(batch_size=input_ids.shape[0], max_len=input_ids.shape[1])
        hidden, cache = self.model(
            input_ids,
            images=images,
            images_seq_mask=images_seq_mask,
            image_grid=image_grid,
            past_key_values=past_key_values,
            position_ids=position_ids,
            routing=routing,
        )
        logits = self.lm_head(hidden).float()
        return CausalLMOutput(logits=logits, past_key_values=cache)

    def new_cache(self, *, batch_size: int, max_len: int) -> KVCache:
        """An empty :class:`KVCache` on this model's device and dtype with room for ``max_len`` positions."""
        weight = self.lm_head.weight
        return KVCache(
            num_layers=self.config.num_hidden_layers,
            batch_size=batch_size,
            num_kv_heads=self.config.num_key_value_heads,
            head_dim=self.config.head_dim,
            max_len=max_len,
            dtype=weight.dtype,
            device=weight.device,
        )
