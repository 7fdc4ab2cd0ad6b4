"""Time of the five matte metrics on a 2048² image: ours against a straightforward formulation.

    python bench/bench_metrics.py [SIZE]

The straightforward formulation computes the same definitions the way they read (and the way the
authors' utils/evaluate.py computes them): Grad by two full 2-D convolutions with the 9×9
Gaussian-derivative kernel per image (``scipy.ndimage.convolve``, the kernel built entry by entry),
Conn by labelling the whole thresholded image at each of the ten thresholds and counting every
label (background included). Both run in this process on the same images, and the script checks
they give the same numbers. Each time is the best of three runs.

Two ground truths: a subject covering under half the image (most portraits: Conn's "largest
component" is then the background at every threshold and we need no labelling) and one covering
more than half (we label, inside the region's bounding box).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

REPO = Path(__file__).resolve().parent.parent


def _metrics_module():
    """``matting.metrics`` from this checkout, its package loaded from its file (no sys.path edit)."""
    spec = importlib.util.spec_from_file_location(
        "promptmatte_matting", REPO / "matting" / "__init__.py", submodule_search_locations=[str(REPO / "matting")]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["promptmatte_matting"] = package
    spec.loader.exec_module(package)
    return importlib.import_module("promptmatte_matting.metrics")


# ----------------------------------------------------------------------------- straightforward


def straightforward(pred, gt):
    """The five metrics computed as the definitions read (see the module docstring)."""
    pred = pred.astype(np.float32)
    gt = gt.astype(np.float32)
    err = (pred - gt) / 255.0
    n = pred.shape[0] * pred.shape[1]
    out = {"MSE": float(np.sum(err ** 2)) / n * 1000, "MAD": float(np.sum(np.abs(err))) / n * 1000,
           "SAD": float(np.sum(np.abs(err))) / 1000}
    out["Grad"] = straightforward_grad(pred / 255.0, gt / 255.0)
    out["Conn"] = straightforward_conn(pred / 255.0, gt / 255.0)
    return out


def _kernel(sigma=1.4, eps=1e-2):
    half = int(np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * eps))))
    size = 2 * half + 1
    hx = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            u, v = i - half, j - half
            g = np.exp(-u ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi))
            gv = np.exp(-v ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi))
            hx[i, j] = g * (-v * gv / sigma ** 2)
    return hx / np.sqrt(np.sum(hx ** 2))


def straightforward_grad(p01, g01):
    hx = _kernel()
    amp = []
    for im in (p01, g01):
        gx = ndi.convolve(im, hx, mode="nearest")
        gy = ndi.convolve(im, hx.T, mode="nearest")
        amp.append(np.sqrt(gx ** 2 + gy ** 2))
    return float(np.sum((amp[0] - amp[1]) ** 2)) / 1000


def straightforward_conn(p01, g01, step=0.1):
    steps = np.arange(0, 1 + step, step)
    level = np.full(p01.shape, -1, dtype=np.float32)
    for i in range(1, len(steps)):
        t = np.float32(steps[i])
        labels, _ = ndi.label((p01 >= t) & (g01 >= t))
        omega = labels == np.argmax(np.bincount(labels.ravel()))
        level[(level == -1) & ~omega] = steps[i - 1]
    level[level == -1] = 1
    pd, gd = p01 - level, g01 - level
    phi_p = 1 - pd * (pd >= np.float32(0.15)).astype(np.int64)
    phi_g = 1 - gd * (gd >= np.float32(0.15)).astype(np.int64)
    return float(np.sum(np.abs(phi_p - phi_g))) / 1000


# ----------------------------------------------------------------------------- the run


def test_images(size: int, radius_fraction: float, seed: int = 0):
    """A soft round subject with a noisy, hair-like edge, and a prediction with errors at the edge."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot(yy - size * 0.48, xx - size * 0.52)
    angle = np.arctan2(yy - size * 0.48, xx - size * 0.52)
    edge = size * radius_fraction * (1 + 0.04 * np.sin(40 * angle))
    gt = np.clip((edge - r) / (size / 60) + 0.5, 0, 1)
    pred = np.clip(gt + rng.normal(0, 0.06, gt.shape) * (gt > 0.02) * (gt < 0.98), 0, 1)
    pred = np.clip(pred + 0.1 * np.roll(gt, size // 200, axis=1) - 0.1 * gt, 0, 1)
    return (np.round(pred * 255).astype(np.float32), np.round(gt * 255).astype(np.float32))


def best_of(fn, runs=3):
    best, value = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def main(size: int = 2048) -> None:
    metrics = _metrics_module()
    print(f"five metrics of one {size}x{size} prediction, best of 3 runs, this machine "
          f"({__import__('os').cpu_count()} CPUs)\n")
    print("| ground truth | part | ours s | straightforward s | ours / straightforward |")
    print("|---|---|---|---|---|")
    for label, frac in (("subject < half the image", 0.3), ("subject > half the image", 0.45)):
        pred, gt = test_images(size, frac)
        metrics.matte_metrics(pred[:128, :128], gt[:128, :128])  # warm up
        p01, g01 = pred / np.float32(255), gt / np.float32(255)
        parts = [
            ("Grad", lambda: metrics._grad(p01, g01, None), lambda: straightforward_grad(p01, g01)),
            ("Conn", lambda: metrics._conn(p01, g01, None), lambda: straightforward_conn(p01, g01)),
            ("all five", lambda: metrics.matte_metrics(pred, gt), lambda: straightforward(pred, gt)),
        ]
        for name, ours_fn, ref_fn in parts:
            t_ours, v_ours = best_of(ours_fn)
            t_ref, v_ref = best_of(ref_fn)
            if name == "all five":
                for k in metrics.METRIC_NAMES:
                    assert abs(v_ours[k] - v_ref[k]) <= 1e-6 * abs(v_ref[k]) + 1e-9, (k, v_ours[k], v_ref[k])
            else:
                assert abs(v_ours - v_ref) <= 1e-6 * abs(v_ref) + 1e-9, (name, v_ours, v_ref)
            print(f"| {label} | {name} | {t_ours:.3f} | {t_ref:.3f} | **{t_ours / t_ref:.2f}x** |", flush=True)
    print("\nBoth formulations give the same numbers (checked to 1e-6 relative).")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2048)
