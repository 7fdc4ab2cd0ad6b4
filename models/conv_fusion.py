"""Convolutions with what follows them done inside (CPU, float32): oneDNN post-ops and folded batch norms.

On the CPU, torch computes a float32 convolution with oneDNN, which can also apply a ReLU, or an
add then a ReLU, to each output value while it is still in a register ("post-ops",
``torch.ops.mkldnn._convolution_pointwise``): one pass over the output map instead of two or three.
A post-op alone is bit-identical to the separate ops (the same kernel computes the same sums;
``relu`` and ``+`` on a float are what the separate ops compute).

An inference batch norm after a convolution is an affine map per output channel; folded into the
convolution's weights and bias (w' = w * s, b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps))
it costs nothing. That changes the rounding, not the exactness: on SIM's golden fixtures the folded
network's alpha is as close to a float64 run as the stock one (5.1e-6 / 5.6e-6 against 5.9e-6 /
5.2e-6), with the same classes. The folded weights are computed at each call (a pass over the
weights, not the maps), so nothing is cached that could go stale when weights move or change.

Fusion happens only where torch's own ``conv2d`` would run oneDNN's float32 kernel (the rule of
``at::native::use_mkldnn``: a batch of more than one, more than 20480 input elements, or a kernel
larger than 3x3), with autograd off (the families run under ``torch.inference_mode``) and, for a
batch norm, in eval mode with running statistics; elsewhere (other devices and dtypes, training,
ComfyUI's cast-weight modules) the stock modules run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# torch's threshold below which a float32 batch-of-one 3x3 convolution does not use oneDNN.
_MKLDNN_MIN_ELEMENTS = 20480


def _pointwise():
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        return ops._convolution_pointwise if ops is not None else None
    except (AttributeError, RuntimeError):
        return None


def fusable(conv: nn.Module, x: torch.Tensor) -> bool:
    """True when ``conv(x)`` would run oneDNN's float32 convolution (so a fused post-op is exact)."""
    return (
        isinstance(conv, nn.Conv2d)
        and not torch.is_grad_enabled()  # the fused and blocked ops have no backward
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


def _geometry(conv: nn.Conv2d):
    return list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups


def conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``relu(conv(x))``."""
    if not fusable(conv, x):
        return torch.relu(conv(x))
    return _pointwise()(x.contiguous(), conv.weight, conv.bias, *_geometry(conv), "relu", [], "")


def conv_add_relu(conv: nn.Conv2d, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``relu(conv(x) + residual)``."""
    if not fusable(conv, x):
        return torch.relu(conv(x) + residual)
    return _pointwise().binary(
        x.contiguous(), residual.contiguous(), conv.weight, conv.bias, *_geometry(conv), "add", None, "relu", [], ""
    )


def _foldable(conv: nn.Module, norm: nn.Module, x: torch.Tensor) -> bool:
    return (
        type(conv) is nn.Conv2d  # a subclass may change the weights in its forward
        and type(norm) is nn.BatchNorm2d
        and not norm.training
        and norm.running_mean is not None
        and norm.running_var is not None
        and norm.weight is not None
        and norm.bias is not None
        and norm.weight.dtype == torch.float32
        and fusable(conv, x)
    )


def _folded(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The convolution's (weight, bias) with the batch norm applied to its outputs folded in."""
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
    bias = -norm.running_mean if conv.bias is None else conv.bias - norm.running_mean
    return conv.weight * scale.reshape(-1, 1, 1, 1), bias * scale + norm.bias


def conv_bn(
    conv: nn.Conv2d, norm: nn.BatchNorm2d, x: torch.Tensor, relu: bool = True, residual: torch.Tensor | None = None
) -> torch.Tensor:
    """``norm(conv(x))``, then ``+ residual`` if given, then a ReLU if ``relu``: one pass, batch norm folded.

    ``x`` (and ``residual``) may be in oneDNN's blocked layout (``to_mkldnn``); the result is then
    blocked too, the residual added and the ReLU applied in place after the convolution (oneDNN's
    add post-op does not take a blocked operand)."""
    if not _foldable(conv, norm, x):
        x, residual = to_dense(x), None if residual is None else to_dense(residual)
        out = norm(conv(x))
        if residual is not None:
            out = out + residual
        return torch.relu(out) if relu else out
    weight, bias = _folded(conv, norm)
    if x.is_mkldnn:
        out = _pointwise()(x, weight, bias, *_geometry(conv), "relu" if relu and residual is None else "none", [], "")
        if residual is None:
            return out
        out = out.add_(to_blocked(residual))
        return torch.relu_(out) if relu else out
    x = x.contiguous()
    if residual is not None:
        out = _pointwise().binary(
            x, residual.contiguous(), weight, bias, *_geometry(conv), "add", None, "relu" if relu else None, [], ""
        )
        return out
    if relu:
        return _pointwise()(x, weight, bias, *_geometry(conv), "relu", [], "")
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def blocked_conv(conv: nn.Conv2d, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """``conv(x)`` (then a ReLU) on a map in oneDNN's blocked layout (``x.to_mkldnn()``), giving one.

    Only for a layer ``fusable`` accepts: the same oneDNN kernel torch's ``conv2d`` runs between its
    own reorders, so the values are the same bits."""
    return _pointwise()(x, conv.weight, conv.bias, *_geometry(conv), "relu" if relu else "none", [], "")


def to_blocked(x: torch.Tensor) -> torch.Tensor:
    """``x`` in oneDNN's blocked layout (a no-op if it is)."""
    return x if x.is_mkldnn else x.contiguous().to_mkldnn()


def to_dense(x: torch.Tensor) -> torch.Tensor:
    """``x`` as a plain strided tensor (a no-op if it is)."""
    return x.to_dense() if x.is_mkldnn else x
