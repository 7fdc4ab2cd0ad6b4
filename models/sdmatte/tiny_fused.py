"""TAESD's layers with each ReLU and residual add done inside the convolution before it (CPU, float32).

LiteSDMatte's autoencoder (TAESD) is a chain of 64-channel 3x3 convolutions, each followed by a
ReLU, three to a residual block that ends with ``relu(conv(h) + x)``. At 1024² its maps are
256 MB each, and every ReLU and add is one more pass over such a map: they took ~7 % of a
LiteSDMatte forward (torch.profiler, bench/limit.py). On the CPU, torch computes a float32
convolution of that size with oneDNN; oneDNN also applies a ReLU, or an add then a ReLU, to each
output value while it is still in a register ("post-ops", ``torch.ops.mkldnn._convolution_pointwise``,
models/conv_fusion.py).

The values are bit-identical to the stock modules': the same oneDNN kernel computes the same
sums, and ``relu`` and ``+`` on a float are what the separate ops compute. A layer is fused only
where torch's own ``conv2d`` would run oneDNN (same rule as ``at::native::use_mkldnn`` for
float32: a batch of more than one, or more than 20480 input elements, or a kernel larger than
3x3); elsewhere, and on other devices and dtypes, the stock module runs.
"""

from __future__ import annotations

import torch
from diffusers.models.unets.unet_2d_blocks import AutoencoderTinyBlock
from torch import nn

from .. import conv_fusion
from ..conv_fusion import conv_add_relu as _conv_add_relu
from ..conv_fusion import conv_relu as _conv_relu


def _is_relu_block(block: nn.Module) -> bool:
    layers = list(block.conv)
    return (
        len(layers) == 5
        and all(isinstance(layers[i], nn.Conv2d) for i in (0, 2, 4))
        and all(type(layers[i]) is nn.ReLU for i in (1, 3))
        and type(block.fuse) is nn.ReLU
        and isinstance(block.skip, nn.Identity)
    )


def _block(block: AutoencoderTinyBlock, x: torch.Tensor) -> torch.Tensor:
    first, _, second, _, third = block.conv
    hidden = _conv_relu(second, _conv_relu(first, x))
    return _conv_add_relu(third, hidden, x)


def _runs_blocked(module: nn.Module, x: torch.Tensor) -> bool:
    """A square (C -> C) 3x3 layer oneDNN computes: it can take and give oneDNN's blocked layout."""
    conv = module.conv[0] if isinstance(module, AutoencoderTinyBlock) else module
    return (
        isinstance(conv, nn.Conv2d)
        and conv.in_channels == conv.out_channels
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and (not isinstance(module, AutoencoderTinyBlock) or _is_relu_block(module))
        and conv_fusion.fusable(conv, x)
    )


def _blocked_layer(module: nn.Module, following: nn.Module | None, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(output, modules consumed) of a square layer on a blocked ``x``, kept blocked."""
    if isinstance(module, AutoencoderTinyBlock):
        first, _, second, _, third = module.conv
        hidden = conv_fusion.blocked_conv(second, conv_fusion.blocked_conv(first, x, relu=True), relu=True)
        # oneDNN's add post-op does not take a blocked operand: add and ReLU in place on the blocked map
        return torch.relu_(conv_fusion.blocked_conv(third, hidden).add_(x)), 1
    if type(following) is nn.ReLU:
        return conv_fusion.blocked_conv(module, x, relu=True), 2
    return conv_fusion.blocked_conv(module, x), 1


def run_layers(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``layers(x)`` for a TAESD encoder's or decoder's ``layers``, ReLUs and residual adds fused where exact.

    Runs of square 64 -> 64 layers stay in oneDNN's blocked layout from one convolution to the next
    (``torch.Tensor.to_mkldnn``): torch's own ``conv2d`` reorders every plain map into that layout and
    back around the same kernel, so skipping the reorders gives the same bits (tested) with two
    passes less over a 256 MB map per convolution at 1024².
    """
    modules = list(layers)
    i = 0
    while i < len(modules):
        module = modules[i]
        following = modules[i + 1] if i + 1 < len(modules) else None
        if _runs_blocked(module, x):
            x, consumed = _blocked_layer(module, following, conv_fusion.to_blocked(x))
            i += consumed
            continue
        x = conv_fusion.to_dense(x)
        if isinstance(module, AutoencoderTinyBlock) and _is_relu_block(module):
            x = _block(module, x)
            i += 1
        elif isinstance(module, nn.Conv2d) and type(following) is nn.ReLU:
            x = _conv_relu(module, x)
            i += 2
        else:
            x = module(x)
            i += 1
    return conv_fusion.to_dense(x)
