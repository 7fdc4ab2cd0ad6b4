"""Prompt rendering: a :class:`Prompt` as the map and coordinates SDMatte reads.

The rules are the reference's (the authors' data pipeline at 1024×1024):

* points: each click is a delta image blurred by ``scipy.ndimage.gaussian_filter``
  (sigma 35 at 1024, kernel truncated at 4 sigma, ``reflect`` borders that repeat the
  edge pixel), scaled to peak 1; the map is the maximum over clicks. Coordinates:
  up to 10 ``(x / W, y / H)`` pairs in click order, zero padded to 20.
* box: 1 on rows ``y1:y2`` and columns ``x1:x2`` (end exclusive); coordinates
  ``[x1 / W, y1 / H, x2 / W, y2 / H]``.
* mask: the binary mask, nearest-resized; coordinates the bounding box of its
  nonzero pixels with the *last* pixel indices, ``[x_min / W, y_min / H,
  x_max / W, y_max / H]``, or ``[0, 0, 1, 1]`` if empty.
* trimap: the trimap (0 / 0.5 / 1), nearest-resized; automatic: all ones. Both
  with coordinates ``[0, 0, 1, 1]``.

Blurring a delta with a separable kernel gives the outer product of two 1-D
profiles, so a click costs O(H + W) to blur plus one outer product, and the
reflection at the borders is the sum of the kernel over the delta's mirror images
(positions ``c + 2nN`` and ``-1 - c + 2nN``), which is exactly what scipy's
``reflect`` mode computes, even when the kernel is wider than the image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import PromptError
from .prompt import MAX_POINTS, Prompt

REFERENCE_SIGMA = 35.0  # gaussian_filter sigma of the reference's point maps ...
REFERENCE_SIZE = 1024  # ... at its 1024×1024 working size
TRUNCATE = 4.0  # scipy.ndimage.gaussian_filter default

_MODEL_KINDS = {"point": "point", "box": "box", "mask": "mask", "trimap": "trimap", "auto": "auto"}


def model_kind(prompt_kind: str) -> str:
    """The model's ``kind`` string for a :class:`Prompt` kind."""
    try:
        return _MODEL_KINDS[prompt_kind]
    except KeyError:
        raise PromptError(f"unknown prompt kind {prompt_kind!r}; use one of {', '.join(_MODEL_KINDS)}") from None


def point_sigma(work_size) -> float:
    """Gaussian sigma in pixels for point maps at ``work_size`` (H, W).

    35 px at 1024, proportional to the *longer* side, so a keep-aspect working
    image at resolution R has the blobs of a stretched R×R one.
    """
    h, w = work_size
    return REFERENCE_SIGMA * max(h, w) / REFERENCE_SIZE


def _reflected_profiles(centers: torch.Tensor, n: int, sigma: float) -> torch.Tensor:
    """1-D blurred-delta profiles, (K, n) float64, each scaled to peak 1.

    ``centers`` (K,) float64 pixel positions (integers reproduce scipy exactly;
    fractional ones evaluate the same truncated Gaussian at the fractional offset).
    """
    radius = int(TRUNCATE * sigma + 0.5)
    idx = torch.arange(n, dtype=torch.float64)
    reps = math.ceil((radius + n) / (2 * n)) + 1
    shifts = torch.arange(-reps, reps + 1, dtype=torch.float64) * (2 * n)
    c = centers[:, None]
    images = torch.cat([c + shifts[None, :], -1.0 - c + shifts[None, :]], dim=1)  # (K, M)
    d = idx[None, None, :] - images[:, :, None]  # (K, M, n)
    g = torch.exp(-0.5 * (d / sigma) ** 2) * (d.abs() <= radius + 1e-9)
    prof = g.sum(dim=1)
    peak = prof.amax(dim=1, keepdim=True)
    return prof / torch.where(peak > 0, peak, torch.ones_like(peak))


def point_map(points_xy, work_size, sigma: float | None = None) -> torch.Tensor:
    """(H, W) float32 map of clicks ``points_xy`` given in working-size pixels."""
    h, w = work_size
    if sigma is None:
        sigma = point_sigma(work_size)
    sigma = max(float(sigma), 1e-3)
    pts = torch.tensor([[float(x), float(y)] for x, y in points_xy], dtype=torch.float64).reshape(-1, 2)
    out = torch.zeros(h, w, dtype=torch.float32)
    if pts.shape[0] == 0:
        return out
    px = _reflected_profiles(pts[:, 0], w, sigma).to(torch.float32)
    py = _reflected_profiles(pts[:, 1], h, sigma).to(torch.float32)
    for k in range(pts.shape[0]):
        torch.maximum(out, py[k][:, None] * px[k][None, :], out=out)
    return out


def _nearest(mask: torch.Tensor, size) -> torch.Tensor:
    """Nearest resize of an (H, W) map, as OpenCV's INTER_NEAREST (source index floor(i * in / out))."""
    if tuple(mask.shape) == tuple(size):
        return mask.to(torch.float32)
    return F.interpolate(mask[None, None].to(torch.float32), size=tuple(size), mode="nearest")[0, 0]


def _floor_px(v: float) -> int:
    return int(math.floor(round(v, 6)))


def render_prompt(prompt: Prompt, work_size, source_size=None, *, sigma: float | None = None, device=None):
    """Render ``prompt`` at the model's working size.

    prompt: in pixels of an image of ``source_size`` (H, W); defaults to the
    prompt's own ``source_size`` (or its mask's size).
    work_size: (H, W) the model works at.
    Returns ``(prompt_map (1, H, W) float32 in [0, 1], coords)`` with coords (20,)
    for points and (4,) otherwise, float32, on ``device`` (CPU by default).
    """
    h, w = (int(v) for v in work_size)
    if h < 1 or w < 1:
        raise PromptError(f"working size {work_size} must be positive")
    kind = prompt.kind
    if source_size is None:
        source_size = prompt.source_size
    if source_size is None and prompt.mask is not None:
        source_size = tuple(prompt.mask.shape)
    if source_size is None and kind in ("point", "box"):
        raise PromptError(
            f"cannot place the {kind} prompt: the size of the image it was drawn on is unknown; "
            "give source_size=(height, width)"
        )
    if kind == "point":
        sh, sw = source_size
        fx, fy = w / sw, h / sh
        pts = [(x * fx, y * fy) for x, y in prompt.points[:MAX_POINTS]]
        pmap = point_map(pts, (h, w), sigma)
        coords = torch.zeros(2 * MAX_POINTS, dtype=torch.float64)
        for i, (x, y) in enumerate(prompt.points[:MAX_POINTS]):
            coords[2 * i] = x / sw
            coords[2 * i + 1] = y / sh
    elif kind == "box":
        sh, sw = source_size
        x1, y1, x2, y2 = prompt.box
        x1, x2 = min(max(x1, 0.0), sw), min(max(x2, 0.0), sw)
        y1, y2 = min(max(y1, 0.0), sh), min(max(y2, 0.0), sh)
        fx, fy = w / sw, h / sh
        c1, c2 = _span(x1 * fx, x2 * fx, w)
        r1, r2 = _span(y1 * fy, y2 * fy, h)
        pmap = torch.zeros(h, w, dtype=torch.float32)
        pmap[r1:r2, c1:c2] = 1.0
        coords = torch.tensor([x1 / sw, y1 / sh, x2 / sw, y2 / sh], dtype=torch.float64)
    elif kind == "mask":
        pmap = (_nearest(prompt.mask, (h, w)) > 0.5).to(torch.float32)
        nz = torch.nonzero(pmap)
        if nz.numel() == 0:
            coords = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
        else:
            y_min, x_min = nz.min(dim=0).values.tolist()
            y_max, x_max = nz.max(dim=0).values.tolist()
            coords = torch.tensor([x_min / w, y_min / h, x_max / w, y_max / h], dtype=torch.float64)
    elif kind == "trimap":
        from .trimap import clean_trimap

        pmap = clean_trimap(_nearest(prompt.mask, (h, w)))
        coords = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    elif kind == "auto":
        pmap = torch.ones(h, w, dtype=torch.float32)
        coords = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    else:  # pragma: no cover - Prompt validates its kind
        raise PromptError(f"unknown prompt kind {kind!r}")
    return pmap[None].to(device=device), coords.to(torch.float32).to(device=device)


def _span(a: float, b: float, n: int):
    """Integer [start, end) pixel range of the box edges a..b (truncated, as the reference), at least 1 px."""
    s = min(max(_floor_px(a), 0), n)
    e = min(max(_floor_px(b), 0), n)
    if e <= s:
        e = min(s + 1, n)
        s = e - 1
    return s, e
