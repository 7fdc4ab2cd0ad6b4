"""SEMat's mask decoder: SAM's two-way transformer with three extra matting tokens.

The output tokens are SAM's IoU token and four mask tokens, HQ-SAM's HQ token (HQ-SAM variant
only) and T = 3 matting tokens, followed by the box's two corner embeddings. After SAM's two-way
transformer, each matting token goes through one shared 3-layer MLP and is multiplied with a
256² "matting feature": the decoder's upscaled image embedding refined by two convolutions, plus
the image embedding upscaled 4x and the first global-attention block's ViT feature upscaled 4x.

The matte uses only the matting logits (B, T, 256, 256). In the HQ-SAM variant the HQ token's
logits are added to them (the authors run with ``hq_token_only``, so SAM's own mask is not
added); in the SAM variant nothing is added (``mask_matting_res_add = False``). SAM's mask and IoU
outputs do not reach the matte, so their heads are not built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class MattingDecoderConfig:
    transformer_dim: int  # 256
    vit_channels: int  # 1024 for ViT-L
    mask_token_count: int  # SAM's 4 (1 + 3 multimask outputs)
    matting_token_count: int  # 3
    has_hq_token: bool  # HQ-SAM variant


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of a (B, C, H, W) map, eps 1e-6 (SAM's)."""

    def __init__(self, channels: int, eps: float = 1e-6, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(channels, device=device, dtype=dtype))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class TokenMLP(nn.Module):
    """Linear -> ReLU -> Linear -> ReLU -> Linear: a token (.., C) -> (.., C / 8) hypernetwork weights."""

    def __init__(self, dim: int, out_dim: int, device=None, dtype=None):
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.Linear(dim, dim, device=device, dtype=dtype), nn.Linear(dim, dim, device=device, dtype=dtype), nn.Linear(dim, out_dim, device=device, dtype=dtype)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class Upscale4x(nn.Module):
    """Two 2x2 stride-2 transposed convolutions, a layer norm and GELU between: (B, in, h, w) -> (B, out, 4h, 4w).

    ``final_gelu``: SAM's output upscaling ends with a GELU, HQ-SAM's feature branches do not.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, final_gelu: bool, device=None, dtype=None):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(in_channels, mid_channels, 2, 2, device=device, dtype=dtype)
        self.norm = LayerNorm2d(mid_channels, device=device, dtype=dtype)
        self.up2 = nn.ConvTranspose2d(mid_channels, out_channels, 2, 2, device=device, dtype=dtype)
        self.final_gelu = final_gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up2(F.gelu(self.norm(self.up1(x))))
        return F.gelu(x) if self.final_gelu else x


class FeatureRefiner(nn.Module):
    """3x3 conv -> layer norm -> GELU -> 3x3 conv: (B, C/8, H, W) -> (B, C/8, H, W)."""

    def __init__(self, channels: int, mid_channels: int, device=None, dtype=None):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, mid_channels, 3, 1, 1, device=device, dtype=dtype)
        self.norm = LayerNorm2d(mid_channels, device=device, dtype=dtype)
        self.conv2 = nn.Conv2d(mid_channels, channels, 3, 1, 1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.gelu(self.norm(self.conv1(x))))


class FeatureBranch(nn.Module):
    """HQ-SAM style 256² feature: refine(upscaled decoder embedding) + up(image embedding) + up(ViT feature)."""

    def __init__(self, dim: int, vit_channels: int, device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.from_vit = Upscale4x(vit_channels, dim, dim // 8, final_gelu=False, **factory)
        self.from_embedding = Upscale4x(dim, dim // 4, dim // 8, final_gelu=False, **factory)
        self.refine = FeatureRefiner(dim // 8, dim // 4, **factory)
        self.token_mlp = TokenMLP(dim, dim // 8, **factory)

    def logits(self, tokens: torch.Tensor, upscaled: torch.Tensor, image_embedding: torch.Tensor, vit_feature: torch.Tensor) -> torch.Tensor:
        """tokens (B, N, C) -> logits (B, N, 4h, 4w)."""
        features = self.refine(upscaled) + (self.from_embedding(image_embedding) + self.from_vit(vit_feature))
        b, c, h, w = features.shape
        return (self.token_mlp(tokens) @ features.view(b, c, h * w)).view(b, -1, h, w)


class MattingMaskDecoder(nn.Module):
    """(image embedding (B, C, 64, 64), dense PE (1, C, 64, 64), box tokens (B, 2, C), first global
    ViT feature (B, 64, 64, V)) -> matting logits (B, T, 256, 256)."""

    def __init__(self, config: MattingDecoderConfig, transformer: nn.Module, device=None, dtype=None):
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        dim = config.transformer_dim
        self.transformer = transformer  # SAM's TwoWayTransformer (models/sam)
        self.iou_token = nn.Parameter(torch.empty(1, dim, **factory))
        self.mask_tokens = nn.Parameter(torch.empty(config.mask_token_count, dim, **factory))
        self.hq_token = nn.Parameter(torch.empty(1, dim, **factory)) if config.has_hq_token else None
        self.matting_tokens = nn.Parameter(torch.empty(config.matting_token_count, dim, **factory))
        self.no_mask_embed = nn.Parameter(torch.empty(1, dim, **factory))  # the prompt encoder's "no mask" dense embedding
        self.output_upscaling = Upscale4x(dim, dim // 4, dim // 8, final_gelu=True, **factory)
        self.hq_branch = FeatureBranch(dim, config.vit_channels, **factory) if config.has_hq_token else None
        self.matting_branch = FeatureBranch(dim, config.vit_channels, **factory)

    def forward(self, image_embedding: torch.Tensor, dense_pe: torch.Tensor, box_tokens: torch.Tensor, vit_feature: torch.Tensor) -> torch.Tensor:
        batch, dim, h, w = image_embedding.shape
        output_tokens = [self.iou_token, self.mask_tokens] + ([self.hq_token] if self.hq_token is not None else []) + [self.matting_tokens]
        tokens = torch.cat(output_tokens, dim=0).unsqueeze(0).expand(batch, -1, -1)
        tokens = torch.cat((tokens, box_tokens), dim=1)
        src = image_embedding + self.no_mask_embed.view(1, dim, 1, 1)
        hs, src = self.transformer(src, dense_pe, tokens)
        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(batch, dim, h, w))
        vit = vit_feature.permute(0, 3, 1, 2)

        first = 1 + self.config.mask_token_count
        if self.hq_token is not None:
            hq_logits = self.hq_branch.logits(hs[:, first : first + 1], upscaled, image_embedding, vit)
            first += 1
        matting = self.matting_branch.logits(hs[:, first : first + self.config.matting_token_count], upscaled, image_embedding, vit)
        if self.hq_token is not None:
            matting = matting + hq_logits
        return matting
