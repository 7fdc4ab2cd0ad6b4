"""SEMat's mask decoder: SAM's two-way transformer with three extra matting tokens.

The output tokens are SAM's IoU token and four mask tokens, HQ-SAM's HQ token (HQ-SAM variant
only) and T = 3 matting tokens, followed by the box's two corner embeddings. After SAM's two-way
transformer, each matting token goes through one shared 3-layer MLP and is multiplied with a
256² "matting feature": the decoder's upscaled image embedding refined by two convolutions, plus
the image embedding upscaled 4x and the first global-attention block's ViT feature upscaled 4x.

The matte uses only the matting logits (B, T, 256, 256). In the HQ-SAM variant the HQ token's
logits are added to them (the authors run with ``hq_token_only``, so SAM's own mask is not
added); in the SAM variant nothing is added (``mask_matting_res_add = False``). SAM's mask and IoU
outputs do not reach the matte: their heads (0.69 M parameters, in models/sam's ``SamMaskDecoder``,
which this decoder reuses for its transformer, tokens and upscaling) are loaded but never run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..sam.layers import MLP, LayerNorm2d
from ..sam.mask_decoder import SamMaskDecoder


@dataclass(frozen=True)
class MattingDecoderConfig:
    transformer_dim: int  # 256
    vit_channels: int  # 1024 for ViT-L
    matting_token_count: int  # 3
    has_hq_token: bool  # HQ-SAM variant


class Upscale4x(nn.Module):
    """HQ-SAM's feature upscaling: 2x2 stride-2 transposed conv, layer norm, GELU, 2x2 stride-2
    transposed conv (no final GELU, unlike SAM's output upscaling): (B, in, h, w) -> (B, out, 4h, 4w)."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(in_channels, mid_channels, 2, 2)
        self.norm = LayerNorm2d(mid_channels)
        self.up2 = nn.ConvTranspose2d(mid_channels, out_channels, 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up2(F.gelu(self.norm(self.up1(x))))


class FeatureRefiner(nn.Module):
    """3x3 conv -> layer norm -> GELU -> 3x3 conv: (B, C/8, H, W) -> (B, C/8, H, W)."""

    def __init__(self, channels: int, mid_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, mid_channels, 3, 1, 1)
        self.norm = LayerNorm2d(mid_channels)
        self.conv2 = nn.Conv2d(mid_channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.gelu(self.norm(self.conv1(x))))


class FeatureBranch(nn.Module):
    """One output kind (HQ or matting): its 256² features and the MLP turning its tokens into weights.

    features = refine(decoder's upscaled embedding) + (up(image embedding) + up(early ViT feature)).
    """

    def __init__(self, dim: int, vit_channels: int):
        super().__init__()
        self.from_vit = Upscale4x(vit_channels, dim, dim // 8)
        self.from_embedding = Upscale4x(dim, dim // 4, dim // 8)
        self.refine = FeatureRefiner(dim // 8, dim // 4)
        self.token_mlp = MLP(dim, dim, dim // 8, 3)

    def logits(self, tokens: torch.Tensor, upscaled: torch.Tensor, image_embedding: torch.Tensor, vit_feature: torch.Tensor) -> torch.Tensor:
        """tokens (B, N, C), upscaled (B, C/8, 4h, 4w), embedding (B, C, h, w), ViT (B, V, h, w) -> (B, N, 4h, 4w)."""
        features = self.refine(upscaled) + (self.from_embedding(image_embedding) + self.from_vit(vit_feature))
        b, c, h, w = features.shape
        return (self.token_mlp(tokens) @ features.view(b, c, h * w)).view(b, -1, h, w)


class MattingMaskDecoder(nn.Module):
    """SAM's decoder with matting tokens: (image embedding (B, C, 64, 64), dense PE (1, C, 64, 64),
    dense prompt (B or 1, C, 64, 64), box tokens (B, 2, C), first global ViT feature (B, 64, 64, V))
    -> matting logits (B, T, 256, 256).

    ``sam`` is SAM's own decoder (models/sam): its transformer, IoU and mask tokens and output
    upscaling are used as they are; its mask and IoU heads are loaded but not run.
    """

    def __init__(self, config: MattingDecoderConfig, sam: SamMaskDecoder):
        super().__init__()
        self.config = config
        dim = config.transformer_dim
        self.sam = sam
        self.hq_token = nn.Parameter(torch.empty(1, dim)) if config.has_hq_token else None
        self.matting_tokens = nn.Parameter(torch.empty(config.matting_token_count, dim))
        self.hq_branch = FeatureBranch(dim, config.vit_channels) if config.has_hq_token else None
        self.matting_branch = FeatureBranch(dim, config.vit_channels)

    def forward(
        self,
        image_embedding: torch.Tensor,
        dense_pe: torch.Tensor,
        dense_prompt: torch.Tensor,
        box_tokens: torch.Tensor,
        vit_feature: torch.Tensor,
    ) -> torch.Tensor:
        batch, dim, h, w = image_embedding.shape
        output_tokens = [self.sam.iou_token.weight, self.sam.mask_tokens.weight]
        output_tokens += [self.hq_token] if self.hq_token is not None else []
        output_tokens.append(self.matting_tokens)
        tokens = torch.cat(output_tokens, dim=0).unsqueeze(0).expand(batch, -1, -1)
        tokens = torch.cat((tokens, box_tokens), dim=1)
        src = image_embedding + dense_prompt
        hs, src = self.sam.transformer(src, dense_pe.expand(batch, -1, -1, -1), tokens)
        upscaled = self.sam.output_upscaling(src.transpose(1, 2).reshape(batch, dim, h, w))
        vit = vit_feature.permute(0, 3, 1, 2)

        first = 1 + self.sam.num_mask_tokens  # after the IoU and SAM's mask tokens
        matting_first = first + (1 if self.hq_token is not None else 0)
        matting = self.matting_branch.logits(hs[:, matting_first : matting_first + self.config.matting_token_count], upscaled, image_embedding, vit)
        if self.hq_token is not None:
            # configs/SEMat_HQ-SAM.py runs with hq_token_only: the HQ token's logits (not SAM's
            # mask) are added to each matting token's.
            matting = matting + self.hq_branch.logits(hs[:, first : first + 1], upscaled, image_embedding, vit)
        return matting
