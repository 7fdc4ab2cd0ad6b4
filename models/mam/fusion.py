"""How Matting Anything combines SAM's mask and the three M2M alphas (its demo's "alpha" guidance).

The authors' ``gradio_app.py`` (default ``guidance_mode="alpha"``) and ``inference_benchmark.py
--postprocess``, with ``utils/util.py``'s helpers, for one image at its original size:

1. outside the SAM mask's bounding box the alpha is the (binary) SAM mask; inside, the OS8
   alpha. The box is ``[y_min:y_max, x_min:x_max]`` of the mask's nonzero pixels: the last row
   and column (the maxima) are outside, as in ``get_unknown_box_from_mask``;
2. the OS4 alpha replaces it where it is "uncertain", one-sided: pixels whose alpha is at least
   1/255, dilated by a 10x10 elliptic structuring element, minus those above 1 - 1/255
   (``get_unknown_tensor_from_pred_oneside(rand_width=20)``, width 20 // 2);
3. the OS1 alpha replaces the result in the same kind of band with a 5x5 ellipse (width 10 // 2).

The authors dilate with OpenCV (``cv2.getStructuringElement(MORPH_ELLIPSE)``, ``cv2.dilate``
with the default anchor at the kernel's centre ``k // 2`` and a border that never wins); we
build the same kernel and dilate with a convolution (the tests compare both with OpenCV's).
An empty SAM mask (their box step fails on it) gives the empty mask everywhere.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOW, HIGH = 1.0 / 255.0, 1.0 - 1.0 / 255.0  # compared in float32, as numpy compares float32 arrays
OS4_WIDTH, OS1_WIDTH = 10, 5  # the demo's rand_width 20 and 10, halved at inference


def ellipse_kernel(size: int) -> torch.Tensor:
    """(size, size) uint8 0/1: ``cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))``.

    OpenCV: r = c = size // 2; row i spans columns c - dx .. c + dx (clipped), with
    dx = round(c * sqrt((r² - (i - r)²) / r²)) for |i - r| <= r (rows beyond r are empty).
    """
    kernel = torch.zeros(size, size, dtype=torch.uint8)
    radius = center = size // 2
    inverse_r2 = 1.0 / (radius * radius) if radius else 0.0
    for row in range(size):
        dy = row - radius
        if abs(dy) > radius:
            continue
        # cvRound of the half-width (rounding half to even, as lrint); never exactly .5 here.
        dx = round(center * math.sqrt((radius * radius - dy * dy) * inverse_r2)) if radius else 0
        kernel[row, max(center - dx, 0) : min(center + dx + 1, size)] = 1
    return kernel


def dilate(mask: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Binary dilation as ``cv2.dilate(mask, kernel)`` (anchor at k // 2): (B, 1, H, W) bool -> bool.

    out[y, x] = any over kernel taps (i, j) of mask[y + i - k // 2, x + j - k // 2], outside = 0:
    a cross-correlation with the kernel, padded k // 2 before and k - 1 - k // 2 after.
    """
    k = kernel.shape[-1]
    before, after = k // 2, k - 1 - k // 2
    weight = kernel.to(device=mask.device, dtype=torch.float32)[None, None]
    padded = F.pad(mask.float(), (before, after, before, after))
    # Sums of at most k² ones are exact in float32.
    return F.conv2d(padded, weight) > 0.5


def uncertain_band(alpha: torch.Tensor, width: int) -> torch.Tensor:
    """(B, 1, H, W) -> bool: alpha >= 1/255 dilated by a width x width ellipse, minus alpha > 1 - 1/255."""
    return dilate(~(alpha < LOW), ellipse_kernel(width)) & ~(alpha > HIGH)


def outside_mask_box(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) binary -> bool, True outside ``[y_min:y_max, x_min:x_max]`` of each mask's pixels."""
    outside = torch.ones_like(mask, dtype=torch.bool)
    for n in range(mask.shape[0]):
        ys, xs = torch.nonzero(mask[n, 0], as_tuple=True)
        if ys.numel():
            outside[n, 0, int(ys.min()) : int(ys.max()), int(xs.min()) : int(xs.max())] = False
    return outside


def fuse_alphas(sam_mask: torch.Tensor, os8: torch.Tensor, os4: torch.Tensor, os1: torch.Tensor) -> torch.Tensor:
    """All (B, 1, H, W) at the input size; sam_mask binary 0/1 -> the fused alpha (B, 1, H, W)."""
    alpha = torch.where(outside_mask_box(sam_mask), sam_mask, os8)
    alpha = torch.where(uncertain_band(alpha, OS4_WIDTH), os4, alpha)
    return torch.where(uncertain_band(alpha, OS1_WIDTH), os1, alpha)
