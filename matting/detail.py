"""Full-resolution detail: an alpha computed at a working size brought to the image's own size.

A driver of the one-image pipeline (:func:`.pipeline.matte`), which calls it where an alpha goes
back to its image's size:

- ``"off"``: bilinear resizing, as the authors do;
- ``"guided"``: the fast guided filter of He et al. (``kornia.filters.guided_blur`` with its
  ``subsample``), guided by the full-resolution image, over the bilinear alpha. It is used only in
  the uncertain band: pixels whose low-resolution neighbourhood is neither all transparent nor all
  opaque. Everywhere else the alpha is the bilinear one, so opaque and empty regions stay exact;
- ``"refine"``: the guided alpha, then the model again on full-resolution tiles of its working
  size that cover the band, each prompted from the guided alpha in the form its family takes
  (:func:`.alpha_prompt.prompt_from_alpha`), blended with feathered overlaps. Tiles run one at a
  time, so memory is bounded by the tile.

An alpha whose working size is not below its image's (neither side larger) is returned exactly as
``"off"`` gives it.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .alpha_prompt import alpha_prompt_kind, prompt_from_alpha, subject_present

CERTAIN_TOLERANCE = 0.02  # alpha within it of 1 is sure foreground in a tile's trimap

DETAIL_MODES = ("off", "guided", "refine")
# Guided filter: a window of radius 8 pixels of the subsampled guide (about 8 working-size pixels,
# 33 px at 4000x3000 from 1024) and a small regularisation (edges of a contrast above ~0.003 in
# the guide count). Chosen on the synthetic cases of tools/make_detail_cases.py, 4000x3000 from a
# 1024x1024 alpha: radius 2/4/8/16 gave Grad 94/75/65/58 (bilinear 91) and SAD 59/54/51/50
# (bilinear 55) at eps 1e-5..1e-3, smaller eps better; 16 costs twice 8's time for little more.
GUIDED_RADIUS = 8
GUIDED_EPS = 1e-5
BAND_RADIUS = 2  # low-resolution pixels around an uncertain one that are uncertain too
CERTAIN = 1e-3  # alpha within this of 0 or 1 is certain
TILE_OVERLAP = 0.125  # fraction of a tile shared with its neighbour, blended linearly
TRIMAP_MARGIN = 0.01  # unknown band of a tile's trimap prompt: +- this fraction of the tile side


def check_detail(detail: str) -> str:
    from .errors import PromptError

    if detail not in DETAIL_MODES:
        raise PromptError(f"detail {detail!r} must be one of {', '.join(DETAIL_MODES)}")
    return detail


def is_upsampled(low_size, full_size) -> bool:
    """Whether an alpha at ``low_size`` (h, w) loses detail at ``full_size`` (H, W): a side grows."""
    return full_size[0] > low_size[0] or full_size[1] > low_size[1]


def bilinear(alpha_low: torch.Tensor, size) -> torch.Tensor:
    """(1, 1, h, w) -> (1, 1, H, W): the pipeline's plain resize (the authors')."""
    if tuple(alpha_low.shape[-2:]) == tuple(size):
        return alpha_low
    return F.interpolate(alpha_low, size=tuple(size), mode="bilinear", align_corners=False, antialias=False)


def uncertain_band_low(alpha_low: torch.Tensor, radius: int = BAND_RADIUS) -> torch.Tensor:
    """(1, 1, h, w) bool: pixels whose (2 radius + 1)² neighbourhood is neither all 0 nor all 1."""
    k = 2 * radius + 1
    local_max = F.max_pool2d(alpha_low, k, stride=1, padding=radius)
    local_min = -F.max_pool2d(-alpha_low, k, stride=1, padding=radius)
    return (local_max > CERTAIN) & (local_min < 1 - CERTAIN)


def guided_upsample(alpha_low: torch.Tensor, image: torch.Tensor, *, radius: int = GUIDED_RADIUS,
                    eps: float = GUIDED_EPS) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(alpha (1, 1, H, W), band (1, 1, H, W) bool or None) for ``alpha_low`` (1, 1, h, w) and its
    image (1, 3, H, W) in [0, 1].

    Outside the band (and everywhere when the alpha is not upsampled) the result is
    :func:`bilinear`'s, bit for bit; the band is None when nothing was upsampled.
    """
    size = tuple(image.shape[-2:])
    plain = bilinear(alpha_low, size)
    if not is_upsampled(alpha_low.shape[-2:], size):
        return plain, None
    band = F.interpolate(uncertain_band_low(alpha_low).float(), size=size, mode="nearest") > 0.5
    if not bool(band.any()):
        return plain, band
    # The filter runs over the band's bounding box only (plus its window), at the subsampling
    # that brings the full size back to about the working size.
    rows = torch.nonzero(band[0, 0].any(dim=1))[:, 0]
    cols = torch.nonzero(band[0, 0].any(dim=0))[:, 0]
    step = max(1, int(min(size[0] / alpha_low.shape[-2], size[1] / alpha_low.shape[-1])))
    reach = (2 * radius + 2) * step
    y0, y1 = max(0, int(rows[0]) - reach), min(size[0], int(rows[-1]) + 1 + reach)
    x0, x1 = max(0, int(cols[0]) - reach), min(size[1], int(cols[-1]) + 1 + reach)
    guided = _fast_guided(image[..., y0:y1, x0:x1].float(), plain[..., y0:y1, x0:x1], radius, eps, step)
    out = plain.clone()
    region = out[..., y0:y1, x0:x1]
    out[..., y0:y1, x0:x1] = torch.where(band[..., y0:y1, x0:x1], guided.clamp_(0, 1), region)
    return out, band


def _fast_guided(guide: torch.Tensor, alpha: torch.Tensor, radius: int, eps: float, step: int) -> torch.Tensor:
    """kornia's guided filter with subsampling ``step``; the sizes padded to a multiple of it (as
    its upsampling needs) by edge replication, and cut back."""
    from kornia.filters import guided_blur  # noqa: PLC0415  (kornia loads only when a matte is upsampled)

    height, width = guide.shape[-2:]
    pad_h, pad_w = (-height) % step, (-width) % step
    if pad_h or pad_w:
        guide = F.pad(guide, (0, pad_w, 0, pad_h), mode="replicate")
        alpha = F.pad(alpha, (0, pad_w, 0, pad_h), mode="replicate")
    # kornia's window is (k - 1) // step + 1 at the subsampled size: 2 radius + 1 there.
    kernel = 2 * radius * step + 1
    out = guided_blur(guide, alpha, kernel, eps, border_type="reflect", subsample=step)
    return out[..., :height, :width]


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) tiles of side ``tile`` (less where the image is smaller) that cover the
    image, neighbours sharing at least ``overlap`` px; the last row and column end at the border."""
    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        count = math.ceil((n - overlap) / (tile - overlap))
        stride = (n - tile) / (count - 1)
        return [round(i * stride) for i in range(count)]

    return [(x, y, min(width, x + tile), min(height, y + tile)) for y in starts(height) for x in starts(width)]


def feather(height: int, width: int, overlap: int, at_border: tuple[bool, bool, bool, bool]) -> torch.Tensor:
    """(height, width) blending weight of a tile: rising linearly over ``overlap`` px from each edge
    that has a neighbour; flat (1) at the image border (left, top, right, bottom flags)."""
    def ramp(n: int, low_border: bool, high_border: bool) -> torch.Tensor:
        position = torch.arange(n, dtype=torch.float32) + 0.5
        r = torch.ones(n)
        if overlap > 0:
            if not low_border:
                r = torch.minimum(r, position / overlap)
            if not high_border:
                r = torch.minimum(r, (n - position) / overlap)
        return r

    left, top, right, bottom = at_border
    return ramp(height, top, bottom)[:, None] * ramp(width, left, right)[None, :]


def refine(matte_tile: Callable, image: torch.Tensor, alpha: torch.Tensor, band: torch.Tensor, *, tile: int,
           prompt_kinds, on_tile: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """The alpha (H, W) refined in ``band`` (H, W) bool by the model on full-resolution tiles.

    ``matte_tile(image (1, h, w, 3), prompt) -> alpha (h, w)``: the one-image pipeline on a tile
    (at or below the working size, so exactly as the authors run it). Each tile that holds band
    pixels and a subject for the family's prompt form is matted with the prompt ``alpha`` makes
    there; the tiles' alphas are blended with linear feathers over their overlaps. Band pixels
    no tile refined keep ``alpha``; every other pixel keeps it too.
    ``on_tile(done, total)`` after each tile (progress, and the place to stop).
    """
    height, width = alpha.shape
    overlap = max(1, int(tile * TILE_OVERLAP))
    kind = alpha_prompt_kind(prompt_kinds)
    todo = [box for box in tile_grid(height, width, tile, overlap)
            if bool(band[box[1]:box[3], box[0]:box[2]].any())]
    weighted = torch.zeros(height, width, dtype=torch.float32)
    weights = torch.zeros(height, width, dtype=torch.float32)
    for done, (x0, y0, x1, y1) in enumerate(todo, start=1):
        local = alpha[y0:y1, x0:x1]
        if subject_present(local, kind):
            margin = max(1, round(TRIMAP_MARGIN * tile)) if kind == "trimap" else 0
            # every partly transparent pixel of the low-resolution alpha is left to the tile's model
            prompt = prompt_from_alpha(local, kind, margin, sure_foreground=1.0 - CERTAIN_TOLERANCE)
            tile_alpha = matte_tile(image[None, y0:y1, x0:x1, :], prompt).to(torch.float32)
            w = feather(y1 - y0, x1 - x0, overlap, (x0 == 0, y0 == 0, x1 == width, y1 == height))
            weighted[y0:y1, x0:x1] += w * tile_alpha
            weights[y0:y1, x0:x1] += w
        if on_tile is not None:
            on_tile(done, len(todo))
    refined = torch.where(weights > 0, weighted / weights.clamp_min(1e-12), alpha)
    return torch.where(band, refined.clamp_(0, 1), alpha)
