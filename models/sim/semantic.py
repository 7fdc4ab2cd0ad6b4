"""The semantic trimap: the classifier's class maps over the trimap's unknown region.

As the authors' test script does it: the classifier runs on square windows of 320 and then 800
pixels that step by half a window and end flush with the bottom/right edge; windows without an
unknown pixel are skipped. Each class map is upsampled to its window and summed where windows
overlap; the sum is divided by the number of windows that covered the pixel. The whole
(20, H, W) result is then min-max normalised (one min and max over all classes and pixels,
uncovered pixels counting as 0) and zeroed outside the unknown region.

A window larger than the image: the authors' last window starts at ``size - window``, a
negative index that Python's slicing counts from the end, so such a window covers only the
last ``2 * size - window`` pixels (everything when that is <= 0). For images smaller than 800
pixels the 800-pixel pass thus sees only a bottom/right crop; kept, since the released
network was evaluated with it.

Windows of one size run through the classifier together, up to one 800-pixel window's worth of
pixels per call (so the peak stays that of the authors' largest window): a batch of small windows
keeps the cores busy where one 20x20 feature map cannot. Each window's map is bit-identical to
its own call (the classifier's convolutions do not mix the images of a batch; tested), and the
maps are added in the authors' order, so the sum is too.
"""

from __future__ import annotations

import torch

from .classifier import SIMClassifier
from .inputs import UNKNOWN

WINDOWS = (320, 800)
BATCH_PIXELS = max(WINDOWS) ** 2  # the authors' largest window: the classifier's peak stays theirs


def window_ranges(size: int, window: int) -> list[tuple[int, int]]:
    """[start, stop) pixel ranges of the windows along one axis of ``size`` pixels."""
    starts = list(range(0, size - window, window // 2)) + [size - window]
    # A negative start s means the slice [s:size] of a Python sequence: from size + s, or 0.
    return [(start if start >= 0 else max(size + start, 0), min(start + window, size)) for start in starts]


def semantic_trimap(classifier: SIMClassifier, image_normalised: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) normalised RGB + (1, 1, H, W) trimap 0 / 128 / 255 -> (1, C, H, W) in [0, 1].

    One image at a time: the normalisation is over the whole map, so a batch would mix images.
    """
    if image_normalised.shape[0] != 1:
        raise ValueError(f"semantic_trimap takes one image at a time, got a batch of {image_normalised.shape[0]}")
    height, width = trimap.shape[-2:]
    unknown = trimap == UNKNOWN
    classifier_input = torch.cat([image_normalised, trimap / 255.0], dim=1)
    windows = [
        (top, bottom, left, right)
        for window in WINDOWS
        for top, bottom in window_ranges(height, window)
        for left, right in window_ranges(width, window)
        if bool(unknown[..., top:bottom, left:right].any())
    ]
    total = None
    coverage = torch.zeros(1, 1, height, width, dtype=image_normalised.dtype, device=image_normalised.device)
    for group in _batches(windows):
        maps = classifier(torch.cat([classifier_input[..., t:b, l:r] for t, b, l, r in group]))
        if total is None:
            total = torch.zeros(1, maps.shape[1], height, width, dtype=maps.dtype, device=maps.device)
        for (top, bottom, left, right), window_maps in zip(group, maps):
            total[..., top:bottom, left:right] += window_maps
            coverage[..., top:bottom, left:right] += 1
    if total is None:
        raise ValueError("the trimap has no unknown (0.5) pixel: there is nothing for SIM to classify")
    averaged = total / coverage.clamp_min(1)
    low, high = averaged.min(), averaged.max()
    return (averaged - low) / (high - low) * unknown.to(averaged.dtype)


def _batches(windows: list[tuple[int, int, int, int]]) -> list[list[tuple[int, int, int, int]]]:
    """Consecutive windows of one shape, grouped up to ``BATCH_PIXELS`` pixels (at least one each)."""
    groups: list[list[tuple[int, int, int, int]]] = []
    for window in windows:
        shape = (window[1] - window[0], window[3] - window[2])
        group = groups[-1] if groups else None
        if (
            group is not None
            and (group[0][1] - group[0][0], group[0][3] - group[0][2]) == shape
            and (len(group) + 1) * shape[0] * shape[1] <= BATCH_PIXELS
        ):
            group.append(window)
        else:
            groups.append([window])
    return groups
