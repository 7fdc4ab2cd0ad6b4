"""Make tests/golden/metrics/cases.npz: small (prediction, ground truth, trimap) cases with the
values the SDMatte authors' own metric functions give them.

    python tools/make_metrics_golden.py AUTHORS_CODE_DIR [OUT.npz] [--commit SHA]

AUTHORS_CODE_DIR is a checkout (or an export) of vivoCameraResearch/SDMatte; its
``utils/evaluate.py`` is loaded from that path by file name (the ``utils`` package itself imports
their training code, which needs data sets on disk). This script is never imported by the pack:
run it in a scratch environment that has what their metric code imports, e.g.

    python3 -m venv /tmp/ref-venv
    /tmp/ref-venv/bin/pip install numpy==1.24.1 scikit-image==0.24.0 "scipy<1.12" opencv-python-headless==4.5.5.64

(their requirements.txt pins numpy 1.24.1, scikit-image 0.24.0 and opencv-python 4.5.4.60, which
has no wheel for Python 3.11; 4.5.5 is the nearest). Per image it does what their
``evaluation.py`` does: grey levels as float32, the prediction resized to the ground truth with
``cv2.resize(..., INTER_LINEAR)`` when the sizes differ, MSE and MAD × 1000, SAD, Grad, Conn; with
a trimap it passes it to the same functions (SAD's first value), as their ``utils`` allow.

Keys per case NAME: ``NAME.pred``, ``NAME.gt`` (float32 grey levels), ``NAME.trimap`` (uint8, when
the case has one), ``NAME.values`` (float64 MSE, MAD, SAD, Grad, Conn), ``NAME.pred_resized``
(OpenCV's resize of the prediction, when the sizes differ); ``cases`` lists the names and ``meta``
is a JSON string with the versions and the authors' commit. Beside it, ``files/`` holds small matte
files in common formats and ``read.<file name>`` what ``cv2.imread(path, 0)`` reads from each.
``prompt<i>.*`` are ground truths with the trimap (GenTrimap, no trimap file; ``trimap2`` = 2 × trimap), clicks (GenPoint(0.8),
coordinates / size) and box (GenBBox(), coordinates and map) their test transforms derive from them
at ``prompt_resolution``², with ``np.random.seed(prompt<i>.seed)`` before GenTrimap and GenPoint.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
from pathlib import Path

import numpy as np

NAMES = ("MSE", "MAD", "SAD", "Grad", "Conn")


def load_authors(code_dir: Path):
    path = code_dir / "utils" / "evaluate.py"
    if not path.is_file():
        sys.exit(f"{path} not found: give the folder of a vivoCameraResearch/SDMatte checkout")
    spec = importlib.util.spec_from_file_location("sdmatte_authors_evaluate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def authors_values(ev, cv2, pred, gt, trimap):
    """What evaluation.py computes for one image (their functions, their resize)."""
    label = gt.astype(np.float32)
    p = pred.astype(np.float32)
    resized = None
    if p.shape != label.shape:
        p = cv2.resize(p, (label.shape[1], label.shape[0]), interpolation=cv2.INTER_LINEAR)
        resized = p
    if trimap is None:
        sad = ev.compute_sad_loss(p, label)
    else:
        sad = ev.compute_sad_loss(p, label, trimap)[0]
    values = [
        ev.compute_mse_loss(p, label, trimap) * 1000,
        ev.compute_mad_loss(p, label, trimap) * 1000,
        sad,
        ev.compute_gradient_loss(p, label, trimap),
        ev.compute_connectivity_error(p, label, trimap),
    ]
    return np.array([float(v) for v in values], dtype=np.float64), resized


# ----------------------------------------------------------------------------- the cases


def soft_disc(h, w, cy, cx, radius, edge):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = np.hypot(yy - cy, xx - cx)
    return np.clip((radius - r) / edge + 0.5, 0.0, 1.0)


def to_levels(a):
    return np.round(np.clip(a, 0, 1) * 255).astype(np.float32)


def trimap_of(gt, band=4):
    """0 / 128 / 255 trimap: unknown where gt is neither 0 nor 255, grown by ``band`` pixels."""
    from scipy.ndimage import binary_dilation

    unknown = (gt > 0) & (gt < 255)
    unknown = binary_dilation(unknown, iterations=band)
    t = np.where(gt >= 255, 255, 0).astype(np.uint8)
    t[unknown] = 128
    return t


def make_cases(rng):
    h, w = 64, 80
    cases = {}
    gt_a = soft_disc(h, w, 30, 38, 17, 6.0)
    gt_a = np.maximum(gt_a, soft_disc(h, w, 50, 66, 6, 3.0))  # a second, small object
    gt = to_levels(gt_a)
    noisy = to_levels(gt_a + rng.normal(0, 0.08, gt_a.shape) * (gt_a > 0.02))
    shifted = to_levels(np.roll(gt_a, (2, -3), axis=(0, 1)))
    tri = trimap_of(gt)
    cases["noisy"] = (noisy, gt, None)
    cases["noisy_trimap"] = (noisy, gt, tri)
    cases["shifted"] = (shifted, gt, None)
    cases["shifted_trimap"] = (shifted, gt, tri)
    cases["identical"] = (gt.copy(), gt, None)
    # predictions of another size: upscaled, downscaled, exactly half (the resize path)
    small = to_levels(soft_disc(48, 60, 22.5, 28.5, 12.75, 4.5) + rng.normal(0, 0.05, (48, 60)))
    cases["resize_up"] = (small, gt, None)
    cases["resize_up_trimap"] = (small, gt, tri)
    big = to_levels(soft_disc(90, 100, 42, 47, 24, 8) + rng.normal(0, 0.05, (90, 100)))
    cases["resize_down"] = (big, gt, None)
    double = to_levels(soft_disc(128, 160, 60, 76, 34, 12) * rng.uniform(0.8, 1.0, (128, 160)))
    cases["resize_half_trimap"] = (double, gt, tri)
    # an odd-sized ground truth: OpenCV's (IPP's) last columns take another code path
    odd_gt = to_levels(soft_disc(50, 75, 24, 37, 15, 5))
    cases["resize_odd"] = (noisy, odd_gt, None)
    # Conn's component rule: a large foreground (its component outnumbers the background), many
    # small blocks of equal size (ties), and levels exactly on a threshold (x.5 grey levels)
    big_fg = to_levels(soft_disc(h, w, 32, 40, 40, 10))
    big_pred = to_levels(np.clip(big_fg / 255 + rng.normal(0, 0.1, (h, w)), 0, 1))
    cases["large_foreground"] = (big_pred, big_fg, None)
    blocks = np.zeros((h, w), np.float32)
    for k, (y, x) in enumerate([(4, 4), (4, 20), (20, 4), (20, 20), (40, 50), (40, 64)]):
        blocks[y:y + 8, x:x + 8] = 255 if k % 2 == 0 else 200
    block_pred = np.clip(blocks + rng.normal(0, 20, (h, w)) * (blocks > 0), 0, 255).round().astype(np.float32)
    cases["equal_blocks"] = (block_pred, blocks, None)
    # levels exactly on a threshold inside a large foreground: 178.5 / 255 rounds to float32(0.7),
    # which is >= the threshold 0.7000000000000001 compared in float32 (numpy 1.24) but not in float64
    on_level = big_pred.copy()
    on_level[24:34, 20:30] = 178.5
    on_level[24:34, 44:54] = 229.5  # 0.9
    on_level[40:46, 30:40] = 76.5  # 0.3
    on_gt = big_fg.copy()
    on_gt[20:50, 16:60] = 255
    cases["threshold_levels"] = (on_level, on_gt, None)
    cases["threshold_levels_trimap"] = (on_level, on_gt, trimap_of(on_gt, band=2))
    # exactly half the image above every threshold: the background ties with the largest
    # component, and the background wins the tie
    half_gt = np.zeros((h, w), np.float32)
    half_gt[:, :40] = 255
    half_pred = half_gt.copy()
    half_pred[:, :40] = np.clip(255 - np.abs(rng.normal(0, 40, (h, 40))), 0, 255).round()
    half_pred[:, 40:] = np.clip(np.abs(rng.normal(0, 10, (h, 40))), 0, 255).round()
    cases["background_tie"] = (half_pred, half_gt, None)
    # two equal components, each larger than the background: the first in raster order wins
    twin_gt = np.zeros((h, w), np.float32)
    twin_gt[:, :39] = 255
    twin_gt[:, 40:79] = 255
    twin_pred = twin_gt.copy()
    twin_pred[:, :39] = 150
    twin_pred[:, 40:79] = 240
    cases["twin_components"] = (twin_pred, twin_gt, None)
    return cases


def write_files(folder: Path, cv2) -> dict:
    """Small matte files in the formats people have, and what ``cv2.imread(path, 0)`` reads from them."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:30, 0:40]
    grey = ((np.sin(xx / 4) + np.cos(yy / 3)) * 60 + 128).clip(0, 255).astype(np.uint8)
    rgb = np.dstack([grey, np.roll(grey, 5, 1), 255 - grey]).astype(np.uint8)
    Image.fromarray(grey).save(folder / "grey.png")
    Image.fromarray(rgb).save(folder / "colour.png")
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(folder / "palette.png")
    Image.fromarray(grey > 128).save(folder / "bilevel.png")
    cv2.imwrite(str(folder / "sixteen_bit.png"), grey.astype(np.uint16) * 257 + (np.arange(grey.size) % 257).reshape(grey.shape).astype(np.uint16))
    Image.fromarray(rgb).save(folder / "colour.jpg", quality=85)
    Image.fromarray(grey).save(folder / "grey.jpg", quality=85)
    Image.fromarray(rgb).save(folder / "colour.bmp")
    Image.fromarray(rgb).save(folder / "colour.tif")
    return {f"read.{p.name}": cv2.imread(str(p), 0) for p in sorted(folder.iterdir())}


def load_authors_transforms(code_dir: Path):
    """Their ``data/dataset.py`` (GenTrimap, GenBBox, GenPoint), loaded with stand-ins for what its
    module level needs and the transforms do not use: torch / torchvision (only imported there) and
    the ``BG-20K/`` folder it lists at import."""
    import os
    import tempfile
    import types

    for name in ("torch", "torch.utils", "torch.utils.data", "torchvision", "torchvision.transforms"):
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name)
    sys.modules["torch.utils.data"].Dataset = object
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    sys.modules["torchvision.transforms"].functional = types.ModuleType("functional")
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.mkdir(os.path.join(scratch, "BG-20K"))
        os.chdir(scratch)
        try:
            spec = importlib.util.spec_from_file_location("sdmatte_authors_dataset", code_dir / "data" / "dataset.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        finally:
            os.chdir(here)
    return module


def prompt_cases(ds, cv2, rng, resolution=128):
    """Ground truths and the prompts their test transforms derive from them (seeded per case)."""
    import random

    out = {}
    for c in range(6):
        h, w = int(rng.integers(80, 200)), int(rng.integers(80, 200))
        a = soft_disc(h, w, h / 2, w / 2, 40, 10)
        if c % 2:
            a = np.maximum(a, soft_disc(h, w, 10, 12, 8, 3))  # a small second object (< 1/10)
        if c == 4:
            a = np.maximum(a, soft_disc(h, w, h - 30, 30, 30, 3))  # a comparable second object
        gt = np.round(a * 255).astype(np.uint8)
        # as DataGenerator.__getitem__ and Resize((R, R)) of their test transforms
        alpha = cv2.resize(gt.astype(np.float32) / 255.0, (resolution, resolution), interpolation=cv2.INTER_LINEAR)
        seed = 7 + c
        sample = {"alpha": alpha, "trimap": None}
        np.random.seed(seed)
        random.seed(seed)
        sample = ds.GenTrimap()(sample)
        np.random.seed(seed)
        sample = ds.GenPoint(0.8, "gauss", 35)(sample)
        sample = ds.GenBBox()(sample)
        out[f"prompt{c}.gt"] = gt
        out[f"prompt{c}.seed"] = np.array(seed)
        out[f"prompt{c}.trimap2"] = np.round(sample["trimap"] * 2).astype(np.uint8)  # 0 / 1 / 2
        out[f"prompt{c}.point_coords"] = np.asarray(sample["point_coords"], dtype=np.float64)
        out[f"prompt{c}.bbox_coords"] = np.asarray(sample["bbox_coords"], dtype=np.float64)
        out[f"prompt{c}.bbox_mask"] = sample["bbox_mask"].astype(np.uint8)
    out["prompt_resolution"] = np.array(resolution)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("authors_code", type=Path, help="folder of a vivoCameraResearch/SDMatte checkout")
    parser.add_argument("out", type=Path, nargs="?", default=Path(__file__).resolve().parent.parent
                        / "tests" / "golden" / "metrics" / "cases.npz")
    parser.add_argument("--commit", default="", help="the authors' commit the folder holds (recorded)")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)

    import cv2
    import scipy
    import skimage

    ev = load_authors(args.authors_code)
    cases = make_cases(np.random.default_rng(args.seed))
    out = {}
    for name, (pred, gt, tri) in cases.items():
        values, resized = authors_values(ev, cv2, pred, gt, tri)
        out[f"{name}.pred"] = pred.astype(np.float32)
        out[f"{name}.gt"] = gt.astype(np.float32)
        if tri is not None:
            out[f"{name}.trimap"] = tri.astype(np.uint8)
        if resized is not None:
            out[f"{name}.pred_resized"] = resized.astype(np.float32)
        out[f"{name}.values"] = values
        print(f"{name:24s} " + "  ".join(f"{k} {v:.6f}" for k, v in zip(NAMES, values)))
    meta = {
        "source": "vivoCameraResearch/SDMatte utils/evaluate.py (+ the per-image steps of evaluation.py)",
        "commit": args.commit,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "opencv": cv2.__version__,
        "opencv_ipp": bool(cv2.ipp.useIPP()),
        "machine": platform.machine(),
        "seed": args.seed,
        "metrics": list(NAMES),
    }
    out.update(write_files(args.out.parent / "files", cv2))
    out.update(prompt_cases(load_authors_transforms(args.authors_code), cv2, np.random.default_rng(args.seed + 1)))
    out["cases"] = np.array(list(cases))
    out["meta"] = np.array(json.dumps(meta))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(f"wrote {len(cases)} cases to {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
