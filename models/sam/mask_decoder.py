"""SAM's mask decoder: a two-way transformer between prompt tokens and the image embedding.

Output tokens (one IoU token, ``num_multimask_outputs + 1`` mask tokens) are prepended to the
prompt tokens; after the transformer, each mask token becomes (through its own MLP) a set of
weights over the upscaled image features, giving one (256, 256) mask logit map per token.

Tensor names match the released checkpoints under ``mask_decoder.``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import SamConfig
from .layers import MLP, LayerNorm2d, MLPBlock


class DecoderAttention(nn.Module):
    """Multi-head attention whose q/k/v projections may narrow the width by ``downsample_rate``."""

    def __init__(self, dim: int, num_heads: int, downsample_rate: int = 1):
        super().__init__()
        internal = dim // downsample_rate
        if internal % num_heads:
            raise ValueError(f"{num_heads} heads do not divide the attention width {internal}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, internal)
        self.k_proj = nn.Linear(dim, internal)
        self.v_proj = nn.Linear(dim, internal)
        self.out_proj = nn.Linear(internal, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (B, Nq, C), k and v (B, Nk, C) -> (B, Nq, C)."""
        out = F.scaled_dot_product_attention(self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v)))
        b, heads, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, heads * c))


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, tokens -> image, token MLP, image -> tokens; each followed by a norm.

    The first block's self-attention sees the tokens without their positional embedding and
    replaces them (no residual), as in SAM.
    """

    def __init__(self, config: SamConfig, skip_first_layer_pe: bool):
        super().__init__()
        dim, heads, rate = config.prompt_embed_dim, config.decoder_num_heads, config.attention_downsample_rate
        self.self_attn = DecoderAttention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = DecoderAttention(dim, heads, rate)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, config.decoder_mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = DecoderAttention(dim, heads, rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries, keys, query_pe, key_pe):
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))

        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, config: SamConfig):
        super().__init__()
        dim = config.prompt_embed_dim
        self.layers = nn.ModuleList(TwoWayAttentionBlock(config, skip_first_layer_pe=(i == 0)) for i in range(config.decoder_depth))
        self.final_attn_token_to_image = DecoderAttention(dim, config.decoder_num_heads, config.attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor):
        """image (B, C, h, w), its pe (B, C, h, w), tokens (B, N, C) -> (tokens (B, N, C), image (B, h*w, C))."""
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        q, k = queries + point_embedding, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys


@dataclass
class SamDecoderOutput:
    """What one decoder pass gives; the optional fields only when asked for.

    masks: (B, M, 256, 256) mask logits (M = 3 with ``multimask_output``, else 1).
    iou_predictions: (B, M).
    all_masks / all_iou_predictions: (B, 4, ...) every mask token's output (token 0 = single mask).
    upscaled_embedding: (B, C / 8, 256, 256) the features the masks are read from.
    """

    masks: torch.Tensor
    iou_predictions: torch.Tensor
    all_masks: torch.Tensor | None = None
    all_iou_predictions: torch.Tensor | None = None
    upscaled_embedding: torch.Tensor | None = None


class SamMaskDecoder(nn.Module):
    def __init__(self, config: SamConfig):
        super().__init__()
        dim = config.prompt_embed_dim
        self.num_multimask_outputs = config.num_multimask_outputs
        self.num_mask_tokens = config.num_mask_tokens
        self.transformer = TwoWayTransformer(config)
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(MLP(dim, dim, dim // 8, 3) for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = MLP(dim, config.iou_head_hidden_dim, self.num_mask_tokens, config.iou_head_depth)

    def predict_masks(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings):
        """All tokens' outputs: (masks (B, 4, 256, 256), iou (B, 4), upscaled features (B, C/8, 256, 256)).

        image_embeddings (1 or B, C, 64, 64): one image's embedding is shared by all B prompts
        (SAM's predictor); B embeddings pair one-to-one with B prompts.
        """
        b = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(b, -1, -1), sparse_prompt_embeddings], dim=1)
        if image_embeddings.shape[0] not in (1, b):
            raise ValueError(
                f"{image_embeddings.shape[0]} image embeddings for {b} prompts: give one embedding, "
                "or one per prompt"
            )
        src = image_embeddings.expand(b, -1, -1, -1) + dense_prompt_embeddings
        pos_src = image_pe.expand(b, -1, -1, -1)
        _, c, h, w = src.shape

        hs, src = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, 0]
        mask_tokens_out = hs[:, 1 : 1 + self.num_mask_tokens]

        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        hyper_in = torch.stack([mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1)
        _, cu, hu, wu = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(b, cu, hu * wu)).reshape(b, -1, hu, wu)
        return masks, self.iou_prediction_head(iou_token_out), upscaled

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        return_details: bool = False,
    ):
        """-> (masks (B, M, 256, 256), iou_predictions (B, M)); M = 3 with ``multimask_output`` else 1.

        With ``return_details`` a ``SamDecoderOutput`` holding also every token's masks and
        scores and the upscaled features.
        """
        all_masks, all_iou, upscaled = self.predict_masks(image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings)
        chosen = slice(1, None) if multimask_output else slice(0, 1)
        masks, iou = all_masks[:, chosen], all_iou[:, chosen]
        if return_details:
            return SamDecoderOutput(masks, iou, all_masks, all_iou, upscaled)
        return masks, iou
