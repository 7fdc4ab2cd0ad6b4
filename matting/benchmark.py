"""How the authors' test scripts prepare a benchmark image: the prompts derived from its ground truth.

The command that runs a checkpoint over a test set with these rules is ``batch.benchmark``
(``python -m <pack>.batch.benchmark``): a front door, on the batch command's machinery. Per image,
as the authors' ``inference.py`` with their test transforms (``data/dataset.py``:
``Resize((1024, 1024))``, ``GenTrimap``, ``GenMask``, ``GenBBox``, ``GenPoint``):
1. the image (RGB / 255) and the ground-truth alpha (grey / 255) are stretched to
   ``resolution``² with bilinear interpolation (``cv2.resize`` INTER_LINEAR arithmetic);
2. the prompt is derived from that alpha:

   * ``box``: rows ``y_min:y_max`` and columns ``x_min:x_max`` of ``alpha > 0`` (the last row and
     column excluded, as their ``bbox_mask[y_min:y_max, x_min:x_max]``), or of its largest
     4-connected component when that is at least 10× the second largest;
   * ``mask``: the ``alpha > 0`` region (their test pipeline draws a random threshold and random
     erosion / dilation when a set has no mask files; we take the threshold 0 and no morphology);
   * ``point``: 10 pixels with ``alpha > 0.8`` drawn as their ``GenPoint`` draws them
     (``np.random.choice(n, 10, replace=False)``), from ``np.random.RandomState(seed)`` fresh for
     every image, so a run and its resumption draw the same clicks;
   * ``trimap``: the set's trimap file when ``--trimap-dir`` is given (128 → unknown, 255 →
     foreground, nearest-resized), else their ``GenTrimap`` on the alpha: sure foreground where
     ``alpha + 1e-5`` eroded by an elliptical kernel of ``fg`` px stays above 0.95, sure
     background where ``1 - alpha + 1e-5`` eroded by one of ``bg`` px does, with
     ``fg, bg = randint(15, 30)`` from the same per-image seed;
   * ``auto``: no prompt;
3. the model runs on the stretched image (fp32 by default), its alpha × 255 is resized back to the
   ground truth's size (bilinear) and truncated to 8 bits (``.astype(np.uint8)``), and written as
   ``OUT/<stem>.png`` (through a temporary name, so an interrupted run never leaves half a file);
4. all predictions are measured (:mod:`.evaluate`: MSE, MAD, SAD, Grad, Conn over the whole image,
   as their ``evaluation.py``) and the table is printed and written to ``OUT/metrics.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .metrics import MetricsError, resize_bilinear

PROMPTS = ("box", "mask", "point", "trimap", "auto")
POINT_THRESHOLD = 0.8  # GenPoint(0.8, ...) at test time
NUM_POINTS = 10
TRIMAP_WIDTHS = (15, 30)  # np.random.randint(15, 30): kernel sizes 15..29 px at the working size
SETTINGS_FILE = "benchmark.json"


class BenchmarkError(MetricsError):
    """A data set, checkpoint or output folder the benchmark cannot use (the message says why and what to do)."""


# ----------------------------------------------------------------------------- prompts from alpha


def working_alpha(gt_levels: np.ndarray, resolution: int) -> np.ndarray:
    """The ground truth as the model's input sees it: grey / 255, stretched to resolution² (float32)."""
    alpha = (np.asarray(gt_levels, dtype=np.float32) / np.float32(255.0)).astype(np.float32)
    return resize_bilinear(alpha, (resolution, resolution))


def box_from_alpha(alpha: np.ndarray):
    """(x1, y1, x2, y2) of their test-time ``GenBBox``: the box of ``alpha > 0`` (or of its largest
    component when it is >= 10× the second), with the last row and column indices as the
    exclusive ends. None when the alpha is empty."""
    import scipy.ndimage as ndi

    binary = alpha > 0
    if not binary.any():
        return None
    labels, count = ndi.label(binary)
    points = np.argwhere(binary)
    (y_min, x_min), (y_max, x_max) = points.min(axis=0), points.max(axis=0)
    if count > 1:
        areas = np.bincount(labels.ravel())[1:]
        order = np.argsort(areas)[::-1]
        if areas[order[0]] >= 10 * areas[order[1]]:
            own = np.argwhere(labels == order[0] + 1)
            (y_min, x_min), (y_max, x_max) = own.min(axis=0), own.max(axis=0)
    return int(x_min), int(y_min), int(x_max), int(y_max)


def points_from_alpha(alpha: np.ndarray, seed: int):
    """10 clicks (x, y) as their ``GenPoint(0.8)`` draws them, or None when fewer than 10 pixels qualify."""
    ys, xs = np.where(alpha > POINT_THRESHOLD)
    if len(ys) < NUM_POINTS:
        return None
    chosen = np.random.RandomState(seed).choice(len(ys), size=NUM_POINTS, replace=False)
    return [(float(xs[i]), float(ys[i])) for i in chosen]


def ellipse_kernel(size: int) -> np.ndarray:
    """``cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))`` as a boolean array."""
    r = c = size // 2
    kernel = np.zeros((size, size), dtype=bool)
    inv = 1.0 / (r * r) if r else 0.0
    for i in range(size):
        dy = i - r
        if abs(dy) <= r:
            dx = int(np.rint(c * np.sqrt((r * r - dy * dy) * inv)))
            kernel[i, max(c - dx, 0): min(c + dx + 1, size)] = True
    return kernel


def _erode(values: np.ndarray, size: int) -> np.ndarray:
    """``cv2.erode(values, ellipse)``: the minimum under the kernel (anchor at its centre); the
    outside of the image does not erode (OpenCV's default border for erosion)."""
    import scipy.ndimage as ndi

    return ndi.minimum_filter(values, footprint=ellipse_kernel(size), mode="constant", cval=np.inf)


def trimap_from_alpha(alpha: np.ndarray, seed: int) -> np.ndarray:
    """0 / 0.5 / 1 trimap of their ``GenTrimap`` (no trimap file), widths drawn from ``RandomState(seed)``."""
    rng = np.random.RandomState(seed)
    fg_width = int(rng.randint(*TRIMAP_WIDTHS))
    bg_width = int(rng.randint(*TRIMAP_WIDTHS))
    a = alpha.astype(np.float32)
    fg = _erode((a + np.float32(1e-5)).astype(np.float32), fg_width)
    bg = _erode((np.float32(1) - a + np.float32(1e-5)).astype(np.float32), bg_width)
    trimap = np.full(a.shape, 0.5, dtype=np.float32)
    trimap[fg > np.float32(0.95)] = 1.0
    trimap[bg > np.float32(0.95)] = 0.0
    return trimap


def nearest_resize(values: np.ndarray, size) -> np.ndarray:
    """OpenCV's INTER_NEAREST: source index floor(d · in / out)."""
    h, w = values.shape
    H, W = size
    rows = np.minimum(np.floor(np.arange(H) * (h / H)).astype(np.intp), h - 1)
    cols = np.minimum(np.floor(np.arange(W) * (w / W)).astype(np.intp), w - 1)
    return values[rows][:, cols]


def trimap_from_file(levels: np.ndarray, resolution: int) -> np.ndarray:
    """A set's trimap file (grey levels) as their loader reads it: 128 → 0.5, 255 → 1, nearest-resized."""
    t = np.asarray(levels, dtype=np.float32).copy()
    t[t == 128] = 0.5
    t[t == 255] = 1.0
    return nearest_resize(t, (resolution, resolution))


def derive_prompt(kind: str, alpha: np.ndarray, seed: int, trimap_levels=None):
    """The :class:`~.prompt.Prompt` for one image, in pixels of the resolution² working image."""
    from .prompt import Prompt

    size = alpha.shape
    if kind == "box":
        box = box_from_alpha(alpha)
        if box is None:
            raise BenchmarkError("its ground truth is empty (no pixel above 0): there is no box to draw")
        x1, y1, x2, y2 = box
        # their box excludes its last row and column; a one-pixel-wide box keeps one pixel
        return Prompt.from_box(x1, y1, max(x2, x1 + 1), max(y2, y1 + 1), source_size=size)
    if kind == "mask":
        region = alpha > 0
        if not region.any():
            raise BenchmarkError("its ground truth is empty (no pixel above 0): there is no mask")
        return Prompt.from_mask(region.astype(np.float32), threshold=0.5)
    if kind == "point":
        points = points_from_alpha(alpha, seed)
        if points is None:
            n = int(np.count_nonzero(alpha > POINT_THRESHOLD))
            raise BenchmarkError(
                f"only {n} pixels of its ground truth are above {POINT_THRESHOLD} at the working size; "
                f"the authors' point sampler needs {NUM_POINTS}"
            )
        return Prompt.from_points(points, source_size=size)
    if kind == "trimap":
        if trimap_levels is not None:
            trimap = trimap_from_file(trimap_levels, size[0])
        else:
            trimap = trimap_from_alpha(alpha, seed)
        if not (trimap > 0.25).any():
            raise BenchmarkError("its trimap is all background: no foreground or unknown pixel to matte")
        return Prompt.from_trimap(trimap)
    if kind == "auto":
        return Prompt.auto()
    raise BenchmarkError(f"unknown prompt kind {kind!r}; use one of {', '.join(PROMPTS)}")


# ----------------------------------------------------------------------------- files


def read_rgb(path) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] (the authors read BGR with OpenCV and swap to RGB)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                img = img.convert("RGBA").convert("RGB")  # OpenCV's colour read drops alpha too
            elif img.mode != "RGB":
                img = img.convert("RGB")
            return np.asarray(img, dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    except FileNotFoundError:
        raise BenchmarkError(f"{path} does not exist") from None
    except (UnidentifiedImageError, OSError) as e:
        raise BenchmarkError(f"{path} cannot be read as an image ({e})") from None


def stretch_image(rgb01: np.ndarray, resolution: int) -> np.ndarray:
    """(R, R, 3) float32: each channel resized as ``cv2.resize(image, (R, R))``."""
    return np.stack([resize_bilinear(rgb01[..., c], (resolution, resolution)) for c in range(3)], axis=-1)


def prediction_levels(alpha_work: np.ndarray, size) -> np.ndarray:
    """uint8 matte at the ground truth's size: ``cv2.resize(pred * 255, (W, H)).astype(np.uint8)``."""
    scaled = (np.clip(alpha_work, 0.0, 1.0).astype(np.float32) * np.float32(255.0)).astype(np.float32)
    return np.floor(resize_bilinear(scaled, size)).astype(np.uint8)


def existing_prediction(path: Path, size) -> bool:
    """True when ``path`` is a readable image of ``size`` (H, W): a finished earlier prediction."""
    from PIL import Image

    if not path.is_file():
        return False
    try:
        with Image.open(path) as img:
            img.load()
            return (img.height, img.width) == tuple(size)
    except Exception:  # noqa: BLE001 - damaged or partial: predict again
        return False
