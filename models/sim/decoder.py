"""SIM's decoder: ASPP on the stride-8 features, then three 2x bilinear steps to full size.

Most of its convolutions are weight-standardised (``StandardisedConv2d``): each output filter is
made zero-mean and unit-deviation before it is applied, every call, as the authors do; the
standardised weights are not what the file stores, so they are computed in ``forward``.
Only ``conv_up4_alpha`` runs at inference; the training-only heads (``conv_up4_fb``,
``conv_up4_attn``) are in the file but not built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import SIMMattingConfig

BACKBONE_CHANNELS = 2048


class StandardisedConv2d(nn.Conv2d):
    """A Conv2d whose filters are standardised per output channel before use.

    w' = (w - mean(w)) / (sqrt(var(w) + 1e-12) + 1e-5), mean and unbiased variance over each
    filter's (in_channels, kh, kw) values.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        # The mean in three steps and the epsilons where they are: the authors' order of operations.
        centred = weight - weight.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True).mean(dim=3, keepdim=True)
        deviation = torch.sqrt(torch.var(centred.view(centred.size(0), -1), dim=1) + 1e-12).view(-1, 1, 1, 1) + 1e-5
        return F.conv2d(x, centred / deviation, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _conv_bn(conv: nn.Module, channels: int, activation: nn.Module) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(channels), activation]


class ASPPPooling(nn.Sequential):
    """Image-level branch: global average, 1x1 conv, BN, ReLU, spread back over (H, W)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.AdaptiveAvgPool2d(1), StandardisedConv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = super().forward(x)
        return F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """(B, 2048, h, w) -> (B, aspp_channels, h, w): 1x1, three dilated 3x3 and a pooled branch, fused."""

    def __init__(self, in_channels: int, rates: tuple[int, ...], out_channels: int):
        super().__init__()
        branches = [nn.Sequential(*_conv_bn(StandardisedConv2d(in_channels, out_channels, 1, bias=False), out_channels, nn.ReLU()))]
        for rate in rates:
            conv = StandardisedConv2d(in_channels, out_channels, 3, padding=rate, dilation=rate, bias=False)
            branches.append(nn.Sequential(*_conv_bn(conv, out_channels, nn.ReLU())))
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        # (The authors' projection ends with Dropout(0.5), the identity at inference: not built.)
        self.project = nn.Sequential(
            *_conv_bn(StandardisedConv2d(len(branches) * out_channels, out_channels, 1, bias=False), out_channels, nn.ReLU())
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class SIMDecoder(nn.Module):
    """Encoder maps + the full-size inputs -> alpha (B, 1, H, W), clamped to [0, 1].

    ``first_input_channels`` (B, 3, H, W) are the normalised RGB planes of the encoder's input,
    ``image`` (B, 3, H, W) the RGB in [0, 1], ``trimap_planes`` (B, 2, H, W) background/foreground.
    """

    def __init__(self, config: SIMMattingConfig):
        super().__init__()
        self.global_module = ASPP(BACKBONE_CHANNELS, config.atrous_rates, config.aspp_channels)
        self.conv_up1 = nn.Sequential(
            *_conv_bn(StandardisedConv2d(BACKBONE_CHANNELS + config.aspp_channels, 256, 3, padding=1), 256, nn.LeakyReLU()),
            *_conv_bn(StandardisedConv2d(256, 256, 3, padding=1), 256, nn.LeakyReLU()),
        )
        self.conv_up2 = nn.Sequential(*_conv_bn(StandardisedConv2d(256 + 256, 256, 3, padding=1), 256, nn.LeakyReLU()))
        self.conv_up3 = nn.Sequential(*_conv_bn(StandardisedConv2d(256 + 128, 64, 3, padding=1), 64, nn.LeakyReLU()))
        # Plain convolutions here (no standardisation, no norm).
        self.conv_up4_alpha = nn.Sequential(
            nn.Conv2d(64 + 3 + 3 + 2, 32, 3, padding=1),
            nn.LeakyReLU(),
            nn.Conv2d(32, 16, 3, padding=1),
            nn.LeakyReLU(),
            nn.Conv2d(16, 1, 1, bias=False),
        )

    def forward(
        self,
        features: list[torch.Tensor],
        first_input_channels: torch.Tensor,
        image: torch.Tensor,
        trimap_planes: torch.Tensor,
    ) -> torch.Tensor:
        stem, layer1, layer4 = features
        x = self.conv_up1(torch.cat([layer4, self.global_module(layer4)], dim=1))
        x = self.conv_up2(torch.cat([_upsample(x), layer1], dim=1))
        x = self.conv_up3(torch.cat([_upsample(x), stem], dim=1))
        x = torch.cat([_upsample(x), first_input_channels, image, trimap_planes], dim=1)
        return self.conv_up4_alpha(x).clamp_(0, 1)
