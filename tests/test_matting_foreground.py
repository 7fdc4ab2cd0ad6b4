"""Foreground estimation (multi-level, Germer et al. 2020) on synthetic composites with a known answer."""

import importlib

import pytest
import torch


@pytest.fixture(scope="module")
def M(pack):
    return importlib.import_module(pack.__name__ + ".matting")


def _scene(h=96, w=128, batch=1, dtype=torch.float32):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h, dtype=dtype), torch.linspace(0, 1, w, dtype=dtype), indexing="ij")
    fg = torch.stack([0.8 + 0.15 * xx, 0.2 + 0.3 * yy, 0.35 + 0.0 * xx])  # smooth, warm
    bg = torch.stack([0.1 + 0.0 * xx, 0.55 + 0.4 * xx, 0.9 - 0.6 * yy])  # smooth, cool
    # a soft disc: opaque core, a wide semi-transparent ring, clear outside
    r = torch.sqrt((xx - 0.5) ** 2 * (w / h) ** 2 + (yy - 0.5) ** 2)
    alpha = ((0.4 - r) / 0.2).clamp(0, 1)[None]
    image = alpha * fg + (1 - alpha) * bg
    rep = lambda t: t[None].repeat(batch, 1, 1, 1)  # noqa: E731
    return rep(image), rep(alpha), rep(fg), rep(bg)


def test_estimate_recovers_the_foreground_colour_under_partial_alpha(M):
    image, alpha, fg, _ = _scene()
    est = M.estimate_foreground(image, alpha)
    assert est.shape == image.shape and est.dtype == torch.float32
    semi = ((alpha > 0.1) & (alpha < 0.9)).expand_as(image)
    err_est = (est - fg).abs()[semi].mean().item()
    err_img = (image - fg).abs()[semi].mean().item()
    assert err_img > 0.15  # the composite itself is far from the foreground colour there ...
    assert err_est < 0.03  # ... the estimate is close to it
    assert err_est < err_img / 5
    opaque = (alpha > 0.999).expand_as(image)
    assert (est - image).abs()[opaque].max().item() < 1e-3
    assert est.min() >= 0 and est.max() <= 1


def test_foreground_and_background_explain_the_image(M):
    image, alpha, _, bg = _scene(64, 64)
    fg_est, bg_est = M.estimate_foreground(image, alpha, return_background=True)
    recomposed = alpha * fg_est + (1 - alpha) * bg_est
    assert (recomposed - image).abs().max().item() < 0.02
    clear = (alpha < 0.001).expand_as(image)
    assert (bg_est - image).abs()[clear].max().item() < 1e-3


def test_batches_and_float64_and_odd_sizes(M):
    image, alpha, fg, _ = _scene(37, 53, batch=2, dtype=torch.float64)
    alpha[1] = alpha[1].flip(-1)
    image[1] = alpha[1] * fg[1] + (1 - alpha[1]) * image[0].new_full((3, 37, 53), 0.2)
    est = M.estimate_foreground(image, alpha)
    assert est.shape == (2, 3, 37, 53) and est.dtype == torch.float64
    # each item is estimated from its own alpha: the same as a single-item call
    single = M.estimate_foreground(image[1:], alpha[1:])
    assert torch.allclose(est[1:], single)


def test_shape_mismatch_is_refused(M):
    with pytest.raises(M.PromptError, match="differ in batch or size"):
        M.estimate_foreground(torch.rand(1, 3, 32, 32), torch.rand(1, 1, 16, 16))


def test_agrees_with_pymatting_when_installed(M):
    """Reference check against pymatting's estimate_foreground_ml (not a project dependency:
    it needs numba). Ours sweeps red-black instead of pixel by pixel, so it agrees closely, not exactly."""
    pymatting = pytest.importorskip("pymatting")
    g = torch.Generator().manual_seed(0)
    image, alpha, fg, bg = _scene(96, 128)
    fg = (fg + 0.1 * torch.randn(fg.shape, generator=g)).clamp(0, 1)
    bg = (bg + 0.1 * torch.randn(bg.shape, generator=g)).clamp(0, 1)
    image = alpha * fg + (1 - alpha) * bg
    ours = M.estimate_foreground(image, alpha)[0].permute(1, 2, 0).numpy()
    ref = pymatting.estimate_foreground_ml(image[0].permute(1, 2, 0).numpy(), alpha[0, 0].numpy())
    assert abs(ours - ref).mean() < 0.01
    semi = ((alpha[0, 0] > 0.05) & (alpha[0, 0] < 0.95)).numpy()
    truth = fg[0].permute(1, 2, 0).numpy()
    assert abs(ours - truth)[semi].mean() <= abs(ref - truth)[semi].mean() * 1.1
