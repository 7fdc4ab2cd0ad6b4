"""AIM's semantic decoder: from the deepest features to a 3-class map (background / unknown / foreground).

Each stage reads the previous stage's output beside the pyramid-pooled deepest features
(upsampled to its scale), refines with three 3x3 convolutions, upsamples x2 and reweights its
channels (squeeze-excitation). Its last stage also gives the matting decoder a spatial gate.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import PyramidPooling, SqueezeExcitation, conv_bn_relu


class SemanticDecoder(nn.Module):
    """Attribute names follow the checkpoint's keys (``decoder4_g``, ``psp4``...)."""

    def __init__(self):
        super().__init__()
        self.psp_module = PyramidPooling(512, 512, (1, 3, 5))
        # The pooled map brought to the scale of stages 3, 2, 1, 0 (x2, x4, x8, x16).
        self.psp4 = conv_bn_relu(512, 256, upsample=2)
        self.psp3 = conv_bn_relu(512, 128, upsample=4)
        self.psp2 = conv_bn_relu(512, 64, upsample=8)
        self.psp1 = conv_bn_relu(512, 64, upsample=16)
        self.decoder4_g = conv_bn_relu(1024, 512, 512, 256, upsample=2)
        self.decoder4_g_se = SqueezeExcitation(256)
        self.decoder3_g = conv_bn_relu(512, 256, 256, 128, upsample=2)
        self.decoder3_g_se = SqueezeExcitation(128)
        self.decoder2_g = conv_bn_relu(256, 128, 128, 64, upsample=2)
        self.decoder2_g_se = SqueezeExcitation(64)
        self.decoder1_g = conv_bn_relu(128, 64, 64, 64, upsample=2)
        self.decoder1_g_se = SqueezeExcitation(64)
        self.decoder0_g = conv_bn_relu(128, 64, 64, upsample=2)
        # Gate for the matting decoder: a 7x7 convolution of the channel mean and max.
        self.decoder0_g_spatial = nn.Conv2d(2, 1, 7, padding=3)
        self.decoder0_g_se = SqueezeExcitation(64)
        self.decoder_final_g = nn.Conv2d(64, 3, 3, padding=1)

    def forward(self, deepest: torch.Tensor, classes: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(B, 512, H/32, W/32) -> (class probabilities (B, 3, H, W) or None, spatial gate (B, 1, H, W)).

        ``classes=False`` skips the 3-class head when only the gate is wanted.
        """
        pooled = self.psp_module(deepest)
        x = self.decoder4_g_se(self.decoder4_g(torch.cat((pooled, deepest), 1)))
        x = self.decoder3_g_se(self.decoder3_g(torch.cat((self.psp4(pooled), x), 1)))
        x = self.decoder2_g_se(self.decoder2_g(torch.cat((self.psp3(pooled), x), 1)))
        x = self.decoder1_g_se(self.decoder1_g(torch.cat((self.psp2(pooled), x), 1)))
        x = self.decoder0_g(torch.cat((self.psp1(pooled), x), 1))
        mean_and_max = torch.cat([torch.mean(x, dim=1, keepdim=True), torch.max(x, dim=1, keepdim=True)[0]], dim=1)
        gate = torch.sigmoid(self.decoder0_g_spatial(mean_and_max))
        if not classes:
            return None, gate
        return torch.sigmoid(self.decoder_final_g(self.decoder0_g_se(x))), gate
