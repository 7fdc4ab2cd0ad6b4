"""Matting Anything's Mask-to-Matte (M2M) module: SAM features + image + SAM mask -> alphas.

From the OS16 image embedding (B, 256, 64, 64) three stages double the resolution (64 -> 128 ->
256 -> 512) and a transposed convolution reaches full resolution (1024); each stage first sees
the image and the SAM mask resized to its input, and three heads read an alpha at output strides
8, 4 and 1. Module names follow the released checkpoint (``layer2.0.conv1`` ...), with the
spectral norm already folded into ``weight`` (``spectral_norm.py``). Batch norms run on their
running statistics (the authors evaluate in eval mode).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import M2mConfig


def _conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)


def _upsample_conv(channels: int) -> nn.ConvTranspose2d:
    """Doubles the resolution: (B, C, h, w) -> (B, C', 2h, 2w)."""
    return nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=1, bias=False)


class ResidualBlock(nn.Module):
    """conv-BN-LeakyReLU-conv-BN plus a shortcut, then LeakyReLU (0.2).

    The first block of a stage upsamples: its first convolution is a stride-2 transposed
    convolution and its shortcut is nearest x2 + 1x1 convolution + BN (``upsample.1``/``.2``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, upsample: bool):
        super().__init__()
        self.conv1 = _upsample_conv(in_channels) if upsample else _conv(in_channels, in_channels, kernel_size)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = _conv(in_channels, out_channels, kernel_size)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.upsample = (
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )
            if upsample
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.bn1(self.conv1(x)), 0.2)
        out = self.bn2(self.conv2(out))
        shortcut = self.upsample(x) if self.upsample is not None else x
        return F.leaky_relu(out + shortcut, 0.2)


def _alpha_head(in_channels: int, hidden: int, kernel_size: int) -> nn.Sequential:
    """conv-BN-LeakyReLU-conv to one logit channel (indices 0, 1, 3 as in the checkpoint)."""
    pad = kernel_size // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, kernel_size, padding=pad, bias=False),
        nn.BatchNorm2d(hidden),
        nn.LeakyReLU(0.2),
        nn.Conv2d(hidden, 1, kernel_size, padding=pad),
    )


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size, mode="bilinear", align_corners=False)


class MaskToMatte(nn.Module):
    def __init__(self, config: M2mConfig):
        super().__init__()
        self.config = config
        for index, name in enumerate(("layer2", "layer3", "layer4")):
            in_channels, out_channels = config.stage_input_channels(index), config.stage_channels[index]
            blocks = [ResidualBlock(in_channels, out_channels, config.block_kernel_size, upsample=True)]
            blocks += [
                ResidualBlock(out_channels, out_channels, config.block_kernel_size, upsample=False)
                for _ in range(config.stage_blocks[index] - 1)
            ]
            setattr(self, name, nn.Sequential(*blocks))
        last = config.stage_channels[-1]
        self.conv1 = nn.ConvTranspose2d(last, config.full_resolution_channels, 4, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(config.full_resolution_channels)
        self.refine_OS8 = _alpha_head(config.stage_channels[0], config.head_channels, config.head_kernel_size)
        self.refine_OS4 = _alpha_head(config.stage_channels[1], config.head_channels, config.head_kernel_size)
        self.refine_OS1 = _alpha_head(config.full_resolution_channels, config.head_channels, config.head_kernel_size)

    def forward(self, embedding: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """embedding (B, 256, 64, 64), image (B, 3, 1024, 1024) SAM-normalised and padded,
        mask (B, 1, 256, 256) binary -> {"os8", "os4", "os1"}: alphas (B, 1, 1024, 1024) in [0, 1].

        OS8 and OS4 are bilinearly upsampled from 128² and 256² (the authors' scale factors).
        """

        def with_guides(x: torch.Tensor) -> torch.Tensor:
            size = x.shape[-2:]
            return torch.cat((x, _resize(image, size), _resize(mask, size)), dim=1)

        x = self.layer2(with_guides(embedding))  # (B, 128, 128, 128)
        logit_os8 = self.refine_OS8(x)
        x = self.layer3(with_guides(x))  # (B, 64, 256, 256)
        logit_os4 = self.refine_OS4(x)
        x = self.layer4(with_guides(x))  # (B, 32, 512, 512)
        x = F.leaky_relu(self.bn1(self.conv1(x)), 0.2)  # (B, 32, 1024, 1024)
        logit_os1 = self.refine_OS1(x)
        del x
        logit_os4 = F.interpolate(logit_os4, scale_factor=4.0, mode="bilinear", align_corners=False)
        logit_os8 = F.interpolate(logit_os8, scale_factor=8.0, mode="bilinear", align_corners=False)
        return {name: (torch.tanh(t) + 1.0) / 2.0 for name, t in (("os8", logit_os8), ("os4", logit_os4), ("os1", logit_os1))}
