"""The ResNet bottleneck block both SIM networks are built from (torchvision's key layout).

The stride sits on the 3x3 convolution (ResNet "v1.5"/"v1c" placement), as in both of the
authors' ResNets. Keys: ``conv1``/``bn1`` (1x1 reduce), ``conv2``/``bn2`` (3x3), ``conv3``/``bn3``
(1x1 expand to 4x), ``downsample.0``/``downsample.1`` (1x1 projection of the shortcut).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import conv_fusion
from ..conv_fusion import conv_bn

EXPANSION = 4


class Bottleneck(nn.Module):
    """(B, in_channels, H, W) -> (B, 4 * planes, H / stride, W / stride)."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1, project_shortcut: bool = False):
        super().__init__()
        out_channels = planes * EXPANSION
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))
            if project_shortcut
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Each batch norm folded into its convolution, ReLU and the residual add done inside it
        # where oneDNN computes the convolution (models/conv_fusion.py); the stock modules elsewhere.
        # Between the convolutions of a stage the maps stay in oneDNN's blocked layout (no reorder
        # of each map before and after each convolution); the stage returns a plain tensor.
        if conv_fusion.fusable(self.conv1, x):
            x = conv_fusion.to_blocked(x)
        if self.downsample is None:
            shortcut = x
        else:
            shortcut = conv_bn(self.downsample[0], self.downsample[1], x, relu=False)
        out = conv_bn(self.conv1, self.bn1, x)
        out = conv_bn(self.conv2, self.bn2, out)
        return conv_bn(self.conv3, self.bn3, out, residual=shortcut)


def residual_stage(in_channels: int, planes: int, blocks: int, stride: int = 1, first_dilation: int = 1, dilation: int = 1) -> nn.Sequential:
    """``blocks`` bottlenecks; the first changes width (and stride), the others keep it.

    A dilated stage (SIM's encoder, output stride 8) keeps stride 1 and widens its 3x3
    convolutions instead: ``first_dilation`` for the first block, ``dilation`` for the rest.
    """
    out_channels = planes * EXPANSION
    layers = [Bottleneck(in_channels, planes, stride, first_dilation, project_shortcut=stride != 1 or in_channels != out_channels)]
    layers += [Bottleneck(out_channels, planes, 1, dilation) for _ in range(blocks - 1)]
    return ResidualStage(*layers)


class ResidualStage(nn.Sequential):
    """The bottlenecks of one stage (keys ``<index>.conv1...``, as a Sequential), returning a plain tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_fusion.to_dense(super().forward(x))
