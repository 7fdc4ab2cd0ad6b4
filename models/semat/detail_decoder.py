"""SEMat's full-resolution detail decoder: the 1024² image and matting logits in, alpha out.

A U-Net over the normalised image concatenated with the matting logits / 6.5: a stem of two 13x13
convolutions, four stride-2 down blocks (1024 -> 64), a bottleneck that joins the 64² map with
the four global-attention blocks' ViT features, four up blocks with additive skips (64 -> 1024)
and a 3x3 head with a sigmoid. Normalisations are batch norms with running statistics (the
authors trained with SyncBN; at inference they are fixed affine maps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# configs/SEMat_*.py: norm_mask_logits = 6.5 (the matting logits are divided by it before joining
# the image). Not stored in the checkpoint.
MATTING_LOGITS_DIVISOR = 6.5
BATCH_NORM_EPS = 1e-5  # torch's BatchNorm2d default, which detectron2's NaiveSyncBatchNorm keeps
BANDED_KERNEL = 7  # kernels this large or larger run in bands of rows (see ConvNormGelu)
BAND_ROWS = 64


@dataclass(frozen=True)
class DetailDecoderConfig:
    """Shapes of the detail decoder, read from its tensors (see ``config.read_semat_config``)."""

    input_channels: int  # 3 image channels + one per matting token (6 for SEMat)
    stem_channels: tuple[int, ...]  # (16, 32): the two 13x13 convolutions; () without a stem
    stem_kernel: int  # 13
    vit_channels: int  # width of the ViT features (1024 for ViT-L)
    vit_feature_count: int  # 4: one per global-attention block
    projected_vit_channels: int  # vit_channels / 4 each
    down_channels: tuple[int, ...]  # (32, 64, 128, 256)
    down_kernel: int  # 5
    stages_per_block: int  # 2 conv pairs per down / up block
    up_channels: tuple[int, ...]  # (128, 64, 32, 16)
    up_kernel: int  # 3
    head_kernel: int  # 3


class FrozenBatchNorm2d(nn.Module):
    """Batch normalisation with its running statistics (inference only). (B, C, H, W) -> same."""

    def __init__(self, channels: int, device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(channels, **factory))
        self.bias = nn.Parameter(torch.zeros(channels, **factory))
        self.register_buffer("running_mean", torch.zeros(channels, **factory))
        self.register_buffer("running_var", torch.ones(channels, **factory))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, BATCH_NORM_EPS)


class ConvPair(nn.Module):
    """conv -> norm -> GELU -> conv -> norm (no activation at the end: the block adds its shortcut first).

    The first convolution may stride by 2 (down blocks) or be a 2x2 transposed convolution (up blocks).
    """

    def __init__(self, first: nn.Module, channels: int, kernel: int, device=None, dtype=None):
        super().__init__()
        self.conv1 = first
        self.norm1 = FrozenBatchNorm2d(channels, device, dtype)
        self.conv2 = nn.Conv2d(channels, channels, kernel, 1, kernel // 2, device=device, dtype=dtype)
        self.norm2 = FrozenBatchNorm2d(channels, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm2(self.conv2(F.gelu(self.norm1(self.conv1(x)))))


class DownBlock(nn.Module):
    """Halves the resolution: (B, in, H, W) -> (B, out, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stages: int, device=None, dtype=None):
        super().__init__()
        pad = kernel // 2
        self.stages = nn.ModuleList()
        for i in range(stages):
            first = nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, kernel, 2 if i == 0 else 1, pad, device=device, dtype=dtype)
            self.stages.append(ConvPair(first, out_channels, kernel, device, dtype))
        self.shortcut = nn.Conv2d(in_channels, out_channels, kernel, 2, pad, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.shortcut(x)
        out = x
        for i, stage in enumerate(self.stages):
            out = stage(F.gelu(out) if i > 0 else out)
        return F.gelu(out + identity)


class UpBlock(nn.Module):
    """Adds the skip, doubles the resolution: (B, in, H, W) + skip (B, in, H, W) -> (B, out, 2H, 2W).

    The shortcut is the summed input upsampled bilinearly (align_corners False) and convolved.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stages: int, device=None, dtype=None):
        super().__init__()
        pad = kernel // 2
        self.stages = nn.ModuleList()
        for i in range(stages):
            if i == 0:
                first = nn.ConvTranspose2d(in_channels, out_channels, 2, 2, device=device, dtype=dtype)
            else:
                first = nn.Conv2d(out_channels, out_channels, kernel, 1, pad, device=device, dtype=dtype)
            self.stages.append(ConvPair(first, out_channels, kernel, device, dtype))
        self.shortcut = nn.Conv2d(in_channels, out_channels, kernel, 1, pad, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = x + skip
        out = x
        for i, stage in enumerate(self.stages):
            out = stage(F.gelu(out) if i > 0 else out)
        identity = F.interpolate(x, size=out.shape[-2:], mode="bilinear", align_corners=False)
        return F.gelu(out + self.shortcut(identity))


class ConvNormGelu(nn.Module):
    """conv (stride 1, same padding) -> norm -> GELU: (B, in, H, W) -> (B, out, H, W).

    Large kernels run in bands of ``BAND_ROWS`` output rows: torch's CPU convolution unfolds
    the input for a k x k kernel into a k² x H x W buffer (709 MB for the 13x13 stem at 1024²),
    so a band bounds that buffer to k² x BAND_ROWS x W. Each output pixel sees the same inputs.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, device=None, dtype=None):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, 1, kernel // 2, device=device, dtype=dtype)
        self.norm = FrozenBatchNorm2d(out_channels, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.conv.kernel_size[0]
        if kernel < BANDED_KERNEL or x.shape[-2] <= BAND_ROWS:
            return F.gelu(self.norm(self.conv(x)))
        pad = kernel // 2
        height = x.shape[-2]
        padded = F.pad(x, (0, 0, pad, pad))  # rows only: columns are padded by the convolution
        out = x.new_empty(x.shape[0], self.conv.out_channels, height, x.shape[-1])
        for top in range(0, height, BAND_ROWS):
            bottom = min(top + BAND_ROWS, height)
            band = F.conv2d(padded[:, :, top : bottom + 2 * pad], self.conv.weight, self.conv.bias, padding=(0, pad))
            out[:, :, top:bottom] = F.gelu(self.norm(band))
        return out


class DetailDecoder(nn.Module):
    """(image (B, 3, S, S) normalised, logits (B, T, S, S), T + 3 = input_channels, vit features
    4 x (B, S/16, S/16, C)) -> alpha (B, 1, S, S) in [0, 1]; S = 1024 for SEMat."""

    def __init__(self, config: DetailDecoderConfig, device=None, dtype=None):
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        channels = config.input_channels
        self.stem = nn.ModuleList()
        for width in config.stem_channels:
            self.stem.append(ConvNormGelu(channels, width, config.stem_kernel, **factory))
            channels = width
        self.vit_projections = nn.ModuleList(
            nn.Conv2d(config.vit_channels, config.projected_vit_channels, 1, **factory) for _ in range(config.vit_feature_count)
        )
        bottom = config.down_channels[-1]
        self.vit_fusion = ConvNormGelu(config.projected_vit_channels * config.vit_feature_count, bottom, 3, **factory)
        self.down_blocks = nn.ModuleList()
        for width in config.down_channels:
            self.down_blocks.append(DownBlock(channels, width, config.down_kernel, config.stages_per_block, **factory))
            channels = width
        self.bottleneck = ConvNormGelu(2 * bottom, bottom, 1, **factory)
        self.up_blocks = nn.ModuleList()
        for width in config.up_channels:
            self.up_blocks.append(UpBlock(channels, width, config.up_kernel, config.stages_per_block, **factory))
            channels = width
        self.alpha_head = nn.Conv2d(channels, 1, config.head_kernel, 1, config.head_kernel // 2, **factory)

    def forward(self, image: torch.Tensor, matting_logits: torch.Tensor, vit_features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat((image, matting_logits / MATTING_LOGITS_DIVISOR), dim=1)
        for layer in self.stem:
            x = layer(x)
        projected = [proj(f.permute(0, 3, 1, 2)) for proj, f in zip(self.vit_projections, vit_features)]
        vit = self.vit_fusion(torch.cat(projected, dim=1))
        skips = []
        for block in self.down_blocks:
            x = block(x)
            skips.append(x)
        x = self.bottleneck(torch.cat((skips[-1], vit), dim=1))
        for block, skip in zip(self.up_blocks, reversed(skips)):
            x = block(x, skip)
        return torch.sigmoid(self.alpha_head(x))
