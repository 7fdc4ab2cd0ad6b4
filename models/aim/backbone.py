"""AIM's encoder: ResNet-34's residual layers behind a stride-1 stem and five max-pools.

Unlike torchvision's ResNet-34 (stride-2 stem, strided layers), every downsampling here is a
3x3 / 2 max-pool that also returns its argmax indices, so the matting decoder can put its
features back where the maxima were (max-unpooling) instead of interpolating.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual path (a 1x1 projection when the width changes)."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
            if in_channels != channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class EncoderFeatures(NamedTuple):
    """Features at every scale of an (B, 3, H, W) input (H, W multiples of 32) and pool indices.

    stem (B, 64, H, W); layer1 (B, 64, H/4, W/4); layer2 (B, 128, H/8, W/8);
    layer3 (B, 256, H/16, W/16); layer4 (B, 512, H/32, W/32).
    pool_indices[i]: argmax indices (int64) of the i-th max-pool, shaped like its output
    (H/2, H/4, H/8, H/16, H/32), to unpool back to its input's size.
    """

    stem: torch.Tensor
    layer1: torch.Tensor
    layer2: torch.Tensor
    layer3: torch.Tensor
    layer4: torch.Tensor
    pool_indices: tuple[torch.Tensor, ...]


class MaxPoolResNet34(nn.Module):
    """The backbone; attribute names follow the checkpoint's ``resnet.*`` keys (``fc`` is not built)."""

    def __init__(self, blocks: tuple[int, int, int, int]):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=1, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, return_indices=True)
        in_channels = 64
        for index, (count, width) in enumerate(zip(blocks, WIDTHS), start=1):
            layer = [BasicBlock(in_channels, width)] + [BasicBlock(width, width) for _ in range(count - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*layer))
            in_channels = width

    def forward(self, image: torch.Tensor) -> EncoderFeatures:
        stem = self.relu(self.bn1(self.conv1(image)))
        # Two pools before layer1 (H/4), then one before each further layer.
        pooled, index0 = self.pool(stem)
        pooled, index1 = self.pool(pooled)
        layer1 = self.layer1(pooled)
        pooled, index2 = self.pool(layer1)
        layer2 = self.layer2(pooled)
        pooled, index3 = self.pool(layer2)
        layer3 = self.layer3(pooled)
        pooled, index4 = self.pool(layer3)
        layer4 = self.layer4(pooled)
        return EncoderFeatures(stem, layer1, layer2, layer3, layer4, (index0, index1, index2, index3, index4))
