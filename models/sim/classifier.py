"""SIM's patch classifier: a ResNet-50 (torchvision layout) read as class activation maps.

SIM does not use the classifier's scores: it projects layer4's features on each class's
``fc`` weights (no bias) to get one activation map per matting pattern, at 1/32 of the patch,
and upsamples it to the patch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..conv_fusion import conv_bn
from .bottleneck import residual_stage
from .config import SIMClassifierConfig


class SIMClassifier(nn.Module):
    """(B, 4, h, w) patch (normalised RGB + trimap / 255) -> (B, 20, h, w) class activation maps."""

    def __init__(self, config: SIMClassifierConfig):
        super().__init__()
        self.conv1 = nn.Conv2d(config.input_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        b1, b2, b3, b4 = config.blocks
        self.layer1 = residual_stage(64, 64, b1)
        self.layer2 = residual_stage(256, 128, b2, stride=2)
        self.layer3 = residual_stage(512, 256, b3, stride=2)
        self.layer4 = residual_stage(1024, 512, b4, stride=2)
        self.fc = nn.Linear(2048, config.num_classes)  # only its weight is used (no bias in the maps)

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(conv_bn(self.conv1, self.bn1, patch))
        features = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        maps = torch.einsum("dc,nchw->ndhw", self.fc.weight, features)
        return F.interpolate(maps, size=patch.shape[-2:], mode="bilinear", align_corners=False)
