"""SIM's encoder: a ResNet-50-v1c dilated to output stride 8, with a side input for the semantic map.

Stem (the "c" in v1c): three 3x3 convolutions 64-64-128, the first with stride 2, then a 3x3
max-pool. The semantic map enters through ``conv1_side`` (7x7, stride 2), added to the first
convolution's output before its batch norm. layer3 and layer4 trade their stride for dilation
(first block 1 / 2, the others 2 / 4), so layer2..layer4 all run at 1/8 of the input size.
"""

from __future__ import annotations

import torch
from torch import nn

from ..conv_fusion import conv_bn
from .bottleneck import residual_stage
from .config import SIMMattingConfig

STEM_CHANNELS = 128


class SIMEncoder(nn.Module):
    """(B, 11, H, W) inputs + (B, 20, H, W) semantic map -> the maps the decoder reads.

    H and W must be multiples of 8. Returns [stem (B, 128, H/2, W/2), layer1 (B, 256, H/4, W/4),
    layer4 (B, 2048, H/8, W/8)] (layer2 and layer3 are not read by the decoder).
    """

    def __init__(self, config: SIMMattingConfig):
        super().__init__()
        self.conv1 = nn.Conv2d(config.input_channels, 64, 3, stride=2, padding=1, bias=False)
        self.conv1_side = nn.Conv2d(config.semantic_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, STEM_CHANNELS, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        b1, b2, b3, b4 = config.blocks
        self.layer1 = residual_stage(STEM_CHANNELS, 64, b1)
        self.layer2 = residual_stage(256, 128, b2, stride=2)
        self.layer3 = residual_stage(512, 256, b3, first_dilation=1, dilation=2)
        self.layer4 = residual_stage(1024, 512, b4, first_dilation=2, dilation=4)

    def forward(self, x: torch.Tensor, semantic_map: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x) + self.conv1_side(semantic_map)))
        x = conv_bn(self.conv2, self.bn2, x)
        stem = conv_bn(self.conv3, self.bn3, x)
        layer1 = self.layer1(self.maxpool(stem))
        layer4 = self.layer4(self.layer3(self.layer2(layer1)))
        return [stem, layer1, layer4]
