"""models/conv_fusion.py: a batch norm folded into its convolution, with ReLU and residual add inside.

The folded result is held to the standard of the stock modules: as close to a float64 computation
as they are (the house rule for a faster formulation), and the stock modules run wherever the
fusion does not apply (training, other dtypes, small maps oneDNN would not take).
"""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn


@pytest.fixture(scope="module")
def fusion(pack):
    return importlib.import_module(f"{pack.__name__}.models.conv_fusion")


def _layers(seed: int, in_channels: int = 32, out_channels: int = 48, kernel: int = 3, bias: bool = False):
    generator = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=bias)
    norm = nn.BatchNorm2d(out_channels)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.1)
        if bias:
            conv.bias.copy_(torch.randn(out_channels, generator=generator))
        norm.weight.copy_(torch.rand(out_channels, generator=generator) * 2)
        norm.bias.copy_(torch.randn(out_channels, generator=generator))
        norm.running_mean.copy_(torch.randn(out_channels, generator=generator))
        norm.running_var.copy_(torch.rand(out_channels, generator=generator) * 3 + 0.05)
    return conv.eval(), norm.eval()


def _stock(conv, norm, x, relu, residual):
    out = norm(conv(x))
    if residual is not None:
        out = out + residual
    return torch.relu(out) if relu else out


@pytest.mark.parametrize("relu, with_residual, bias", [(True, False, False), (False, False, True), (True, True, False)])
def test_folded_is_as_close_to_float64_as_the_stock_modules(fusion, relu, with_residual, bias):
    conv, norm = _layers(1, bias=bias)
    x = torch.randn(2, 32, 40, 40, generator=torch.Generator().manual_seed(2))
    residual = torch.randn(2, 48, 40, 40, generator=torch.Generator().manual_seed(3)) if with_residual else None
    with torch.inference_mode():
        folded = fusion.conv_bn(conv, norm, x, relu=relu, residual=residual)
        stock = _stock(conv, norm, x, relu, residual)
        exact = _stock(conv.double(), norm.double(), x.double(), relu, None if residual is None else residual.double())
    assert folded.dtype == torch.float32 and folded.shape == stock.shape
    stock_error = float((stock.double() - exact).abs().max())
    folded_error = float((folded.double() - exact).abs().max())
    assert folded_error <= 2 * stock_error + 1e-6, (folded_error, stock_error)
    assert not torch.equal(folded, stock) or stock_error == 0  # the fold really ran (its rounding differs)
    if relu:
        assert float(folded.min()) == 0.0


@pytest.mark.parametrize("kernel, relu, with_residual", [(1, True, False), (3, True, True), (1, False, True)])
def test_a_blocked_map_gives_the_plain_result(fusion, kernel, relu, with_residual):
    """Maps kept in oneDNN's blocked layout between convolutions (SIM's stages): the same values
    as the plain path (the same kernel, without the reorders around it), returned blocked."""
    conv, norm = _layers(6, in_channels=48, kernel=kernel)
    x = torch.randn(2, 48, 33, 35, generator=torch.Generator().manual_seed(8))
    residual = torch.randn(2, 48, 33, 35, generator=torch.Generator().manual_seed(9)) if with_residual else None
    with torch.inference_mode():
        plain = fusion.conv_bn(conv, norm, x, relu=relu, residual=residual)
        blocked = fusion.conv_bn(conv, norm, fusion.to_blocked(x), relu=relu,
                                 residual=None if residual is None else fusion.to_blocked(residual))
    assert blocked.is_mkldnn
    assert torch.equal(fusion.to_dense(blocked), plain)


def test_the_stock_modules_run_where_nothing_is_folded(fusion):
    conv, norm = _layers(4)
    x = torch.randn(1, 32, 24, 24, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        small = fusion.conv_bn(conv, norm, x[..., :4, :4])  # 512 elements: torch would not use oneDNN
        assert torch.equal(small, torch.relu(norm(conv(x[..., :4, :4]))))
        conv64, norm64 = (layer.double() for layer in _layers(4))
        as_double = fusion.conv_bn(conv64, norm64, x.double())
        assert torch.equal(as_double, torch.relu(norm64(conv64(x.double()))))
    with torch.enable_grad():  # autograd on: the stock modules, so a backward pass works
        tracked = fusion.conv_bn(conv, norm, x)
        assert torch.equal(tracked, torch.relu(norm(conv(x))))
        tracked.sum().backward()
        assert conv.weight.grad is not None
    norm.train()
    trained = fusion.conv_bn(conv, norm, x, relu=False)
    norm.eval()
    assert trained.requires_grad  # batch statistics, autograd: the stock path
    assert torch.allclose(trained.mean(dim=(0, 2, 3)), norm.bias, atol=1e-5)
