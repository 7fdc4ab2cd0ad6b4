"""The engine on a CUDA GPU: the golden fixtures' alphas in float32, and the VRAM a pass takes.

Runs only where torch sees a CUDA device (this repository's CI machine has none: the meta-device
tests in ``test_models_memory.py`` stand in for "not the CPU" there).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

GOLDEN_MODELS = ("sdmatte_tiny", "litesdmatte_tiny", "litesdmatte_tiny_nomid")
CASE_KINDS = {"point_mask": "point", "bbox_mask": "box", "mask": "mask", "trimap": "trimap", "auto_mask": "auto"}
TOLERANCE = 2e-5  # as on the CPU: the reference's own float32
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def engine(pack):
    return importlib.import_module(f"{pack.__name__}.models")


def _tf32_flags():
    backends = torch.backends
    if hasattr(getattr(backends.cudnn, "conv", None), "fp32_precision"):
        return backends.cudnn.conv.fp32_precision, backends.cuda.matmul.fp32_precision
    return backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32


@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_golden_alphas_in_float32_on_the_gpu(engine, golden_dir, name):
    """Every prompt kind, both opacity flags and the batch of two, within 2e-5 of the authors'
    alphas, with the host's TF32 settings (cuDNN's default allows TF32) left as they were."""
    model = engine.load_matting_model(golden_dir / name / "model.safetensors", device="cuda")
    assert model.device.type == "cuda" and model.dtype == torch.float32
    cases = np.load(golden_dir / name / "cases.npz")
    flags = _tf32_flags()
    errors = {}
    for case, kind in CASE_KINDS.items():
        for transparent in (False, True):
            prefix = f"{case}.trans{int(transparent)}."
            alpha = model(
                torch.from_numpy(cases["image"])[None].to(CUDA),
                torch.from_numpy(cases[prefix + "map"])[None, None].to(CUDA),
                torch.from_numpy(cases[prefix + "coords"])[None].to(CUDA),
                kind,
                torch.tensor([transparent], device=CUDA),
            )
            assert alpha.device.type == "cuda"
            errors[prefix] = float((alpha[0, 0].cpu() - torch.from_numpy(cases[prefix + "alpha"])).abs().max())
    alpha = model(
        torch.from_numpy(cases["batch2.image"]),  # CPU inputs: the alpha comes back to the CPU
        torch.from_numpy(cases["batch2.map"])[:, None],
        torch.from_numpy(cases["batch2.coords"]),
        "box",
        torch.from_numpy(cases["batch2.is_trans"]).bool(),
    )
    assert alpha.device.type == "cpu"
    errors["batch2"] = float((alpha[:, 0] - torch.from_numpy(cases["batch2.alpha"])).abs().max())
    assert _tf32_flags() == flags  # the pass turned TF32 off for itself only
    assert max(errors.values()) <= TOLERANCE, {key: f"{value:.2e}" for key, value in errors.items()}


@pytest.mark.parametrize("kind", ["box", "trimap"])
def test_peak_vram_at_1024_stays_within_the_reserved_memory(engine, golden_dir, kind):
    """A 1024² pass allocates at most the model's weights plus ``inference_memory_bytes``, the
    room the ComfyUI node reserves before running (masked and unmasked attention)."""
    model = engine.load_matting_model(golden_dir / "sdmatte_tiny" / "model.safetensors", device="cuda")
    weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    size = 1024
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=generator)
    prompt = torch.zeros(1, 1, size, size)
    prompt[..., 256:768, 320:704] = 1
    coords = torch.tensor([[320 / size, 256 / size, 704 / size, 768 / size]])
    if kind == "trimap":
        prompt[..., 256:768, 320:704] = 0.5
        coords = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    model(image[..., :64, :64], prompt[..., :64, :64], coords, kind, torch.tensor([False]))  # kernels and caches warm
    model.latent_cache.clear()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    alpha = model(image, prompt, coords, kind, torch.tensor([False]))  # CPU in, CPU out
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    assert alpha.shape == (1, 1, size, size) and bool(torch.isfinite(alpha).all())
    budget = weights + model.inference_memory_bytes(1, size, size)
    assert before <= weights + (16 << 20)  # nothing but the model (and the latent cache's few entries) stays
    assert peak <= budget, f"peak {peak / 2**20:.0f} MiB > weights {weights / 2**20:.0f} MiB + reserved {(budget - weights) / 2**20:.0f} MiB"
