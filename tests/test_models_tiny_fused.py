"""LiteSDMatte's autoencoder with ReLUs and residual adds fused into its convolutions: the stock
TAESD modules' values to the last bit, and the fused kernels really run."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch.profiler import ProfilerActivity, profile


@pytest.fixture(scope="module")
def vae(pack, golden_dir):
    engine = importlib.import_module(f"{pack.__name__}.models")
    return engine.load_matting_model(golden_dir / "litesdmatte_tiny" / "model.safetensors").vae


@pytest.mark.parametrize("size", [(64, 96), (256, 192)])
def test_fused_taesd_equals_the_stock_modules_bit_for_bit(vae, size):
    generator = torch.Generator().manual_seed(sum(size))
    pixels = torch.rand(1, 3, *size, generator=generator)
    latent = torch.randn(2, 4, size[0] // 8, size[1] // 8, generator=generator)  # a batch: oneDNN everywhere
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as profiled:
        encoded = vae.encode_scaled(pixels)
        decoded = vae.decode_rgb(latent)
    with torch.inference_mode():
        assert torch.equal(encoded, vae.encoder(pixels) * vae.config.scaling_factor)
        assert torch.equal(decoded, vae.decoder(latent / vae.config.scaling_factor))
    fused = [e for e in profiled.key_averages() if "convolution_pointwise" in e.key]
    assert fused and sum(e.count for e in fused) >= 4, "no fused convolution ran"
    reorders = [e for e in profiled.key_averages() if e.key in ("aten::to_mkldnn", "aten::to_dense")]
    assert reorders, "no run of layers stayed in oneDNN's blocked layout"
