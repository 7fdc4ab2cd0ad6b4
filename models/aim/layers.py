"""Building blocks shared by AIM's two decoders."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(*channels: int, dilation: int = 1, upsample: int = 1) -> nn.Sequential:
    """3x3 convolutions, each followed by BatchNorm and ReLU: ``channels`` = (in, mid..., out).

    ``upsample`` > 1 adds a final bilinear upsampling by that factor (half-pixel centres, as
    ``nn.Upsample``'s default). Indices inside the Sequential are the checkpoint's: conv 0,
    bn 1, conv 3, bn 4...
    """
    layers: list[nn.Module] = []
    for in_channels, out_channels in zip(channels[:-1], channels[1:]):
        layers += [
            nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
    if upsample > 1:
        layers.append(nn.Upsample(scale_factor=upsample, mode="bilinear"))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Channel attention: each channel scaled by a gate computed from all channels' means."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
        return x * gate[:, :, None, None]


class PyramidPooling(nn.Module):
    """PSP pooling: the map averaged over 1x1, 3x3 and 5x5 grids, projected, upsampled back and fused.

    (B, C, h, w) -> (B, out_channels, h, w), ReLU'd.
    """

    def __init__(self, channels: int, out_channels: int, grid_sizes: tuple[int, ...] = (1, 3, 5)):
        super().__init__()
        self.grid_sizes = grid_sizes
        # Checkpoint keys: stages.<i>.1.weight (index 0 is the parameter-free pooling).
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(size), nn.Conv2d(channels, channels, 1, bias=False)) for size in grid_sizes
        )
        self.bottleneck = nn.Conv2d(channels * (len(grid_sizes) + 1), out_channels, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        size = features.shape[-2:]
        priors = [F.interpolate(stage(features), size=size, mode="bilinear", align_corners=False) for stage in self.stages]
        return F.relu(self.bottleneck(torch.cat(priors + [features], dim=1)))
