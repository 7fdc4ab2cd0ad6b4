"""TAESD's layers with each ReLU and residual add done inside the convolution before it (CPU, float32).

LiteSDMatte's autoencoder (TAESD) is a chain of 64-channel 3x3 convolutions, each followed by a
ReLU, three to a residual block that ends with ``relu(conv(h) + x)``. At 1024² its maps are
256 MB each, and every ReLU and add is one more pass over such a map: they took ~7 % of a
LiteSDMatte forward (torch.profiler, bench/limit.py). On the CPU, torch computes a float32
convolution of that size with oneDNN; oneDNN also applies a ReLU, or an add then a ReLU, to each
output value while it is still in a register ("post-ops", ``torch.ops.mkldnn._convolution_pointwise``).

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

# torch's threshold below which a float32 batch-of-one 3x3 convolution does not use oneDNN.
_MKLDNN_MIN_ELEMENTS = 20480


def _pointwise():
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        return ops._convolution_pointwise if ops is not None else None
    except (AttributeError, RuntimeError):
        return None


def _fusable(conv: nn.Module, x: torch.Tensor) -> bool:
    """True when ``conv(x)`` would run oneDNN's float32 convolution (so a fused post-op is exact)."""
    return (
        isinstance(conv, nn.Conv2d)
        # ComfyUI's streamable twin (comfy.ops) computes the stock conv unless it casts or patches weights
        and not getattr(conv, "comfy_cast_weights", False)
        and not getattr(conv, "weight_function", None)
        and not getattr(conv, "bias_function", None)
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and conv.weight.dtype == torch.float32
        and conv.weight.device.type == "cpu"
        and x.dim() == 4
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and (x.shape[0] > 1 or x.numel() > _MKLDNN_MIN_ELEMENTS or min(conv.kernel_size) > 3)
        and _pointwise() is not None
    )


def _conv_args(conv: nn.Conv2d):
    return conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups


def _conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    if not _fusable(conv, x):
        return torch.relu(conv(x))
    return _pointwise()(x.contiguous(), *_conv_args(conv), "relu", [], "")


def _conv_add_relu(conv: nn.Conv2d, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``relu(conv(x) + residual)``."""
    if not _fusable(conv, x):
        return torch.relu(conv(x) + residual)
    return _pointwise().binary(x.contiguous(), residual.contiguous(), *_conv_args(conv), "add", None, "relu", [], "")


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


def run_layers(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``layers(x)`` for a TAESD encoder's or decoder's ``layers``, ReLUs and residual adds fused where exact."""
    modules = list(layers)
    i = 0
    while i < len(modules):
        module = modules[i]
        following = modules[i + 1] if i + 1 < len(modules) else None
        if isinstance(module, AutoencoderTinyBlock) and _is_relu_block(module):
            x = _block(module, x)
            i += 1
        elif isinstance(module, nn.Conv2d) and type(following) is nn.ReLU:
            x = _conv_relu(module, x)
            i += 2
        else:
            x = module(x)
            i += 1
    return x
