"""AIM's matting decoder: alpha detail, upsampled by max-unpooling with the encoder's pool indices."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import EncoderFeatures
from .layers import conv_bn_relu


class MattingDecoder(nn.Module):
    """Attribute names follow the checkpoint's keys (``bridge_block``, ``decoder4_l``...)."""

    def __init__(self):
        super().__init__()
        self.bridge_block = conv_bn_relu(512, 512, 512, 512, dilation=2)
        self.decoder4_l = conv_bn_relu(1024, 512, 512, 256)
        self.decoder3_l = conv_bn_relu(512, 256, 256, 128)
        self.decoder2_l = conv_bn_relu(256, 128, 128, 64)
        self.decoder1_l = conv_bn_relu(128, 64, 64, 64)
        self.decoder0_l = conv_bn_relu(128, 64, 64)
        self.decoder_final_l = nn.Conv2d(64, 1, 3, padding=1)

    def forward(self, features: EncoderFeatures, gate: torch.Tensor) -> torch.Tensor:
        """Encoder features + the semantic decoder's (B, 1, H, W) gate -> alpha (B, 1, H, W) in (0, 1)."""
        index0, index1, index2, index3, index4 = features.pool_indices

        def unpool(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
            return F.max_unpool2d(x, indices, kernel_size=2, stride=2)

        x = self.decoder4_l(torch.cat((self.bridge_block(features.layer4), features.layer4), 1))
        x = self.decoder3_l(torch.cat((unpool(x, index4), features.layer3), 1))
        x = self.decoder2_l(torch.cat((unpool(x, index3), features.layer2), 1))
        x = self.decoder1_l(torch.cat((unpool(x, index2), features.layer1), 1))
        # No convolution between the first two pools, so two unpoolings in a row.
        x = self.decoder0_l(torch.cat((unpool(unpool(x, index1), index0), features.stem), 1))
        x = x + x * gate
        return torch.sigmoid(self.decoder_final_l(x))
