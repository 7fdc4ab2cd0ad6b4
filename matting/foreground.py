"""Foreground colour estimation from an image and its alpha matte.

Multi-level foreground estimation (Germer, Uelwer, Conrad, Harmeling, 2020,
"Fast multi-level foreground estimation"): solve for foreground F and background
B with I = αF + (1 − α)B per pixel, regularised towards neighbours with weights
``regularization + gradient_weight · |Δα|``, coarse to fine from 1×1 pixel up
to full size, a few iterations per level. Vectorised torch; the per-level sweeps
update the two colours of a checkerboard in turn (red-black Gauss-Seidel), so
every step is a whole-tensor operation and runs on any device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import PromptError


def _neighbours(x: torch.Tensor):
    """Left, right, up, down neighbours of every pixel (edges repeat), each shaped like x."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return (p[..., 1:-1, :-2], p[..., 1:-1, 2:], p[..., :-2, 1:-1], p[..., 2:, 1:-1])


def _nearest(x: torch.Tensor, size) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="nearest")


def estimate_foreground(
    image: torch.Tensor,
    alpha: torch.Tensor,
    *,
    regularization: float = 1e-5,
    n_small_iterations: int = 10,
    n_big_iterations: int = 2,
    small_size: int = 32,
    gradient_weight: float = 1.0,
    return_background: bool = False,
):
    """Foreground colours (B, C, H, W) in [0, 1] of ``image`` (B, C, H, W) under ``alpha`` (B, 1, H, W).

    Levels grow geometrically from 1×1 to H×W; levels no larger than ``small_size``
    get ``n_small_iterations`` sweeps, larger ones ``n_big_iterations``. With
    ``return_background`` returns ``(foreground, background)``.
    """
    if image.dim() != 4 or alpha.dim() != 4 or alpha.shape[1] != 1:
        raise PromptError(
            f"foreground estimation needs image (B, C, H, W) and alpha (B, 1, H, W), "
            f"got {tuple(image.shape)} and {tuple(alpha.shape)}"
        )
    if image.shape[0] != alpha.shape[0] or image.shape[-2:] != alpha.shape[-2:]:
        raise PromptError(
            f"image {tuple(image.shape)} and alpha {tuple(alpha.shape)} differ in batch or size; "
            "give one alpha per image, of the image's size"
        )
    if image.shape[0] > 1:  # one item at a time bounds the memory to one image's temporaries
        outs = [
            estimate_foreground(
                image[i: i + 1], alpha[i: i + 1], regularization=regularization,
                n_small_iterations=n_small_iterations, n_big_iterations=n_big_iterations,
                small_size=small_size, gradient_weight=gradient_weight, return_background=True,
            )
            for i in range(image.shape[0])
        ]
        fg = torch.cat([o[0] for o in outs])
        if return_background:
            return fg, torch.cat([o[1] for o in outs])
        return fg
    out_dtype = image.dtype if image.is_floating_point() else torch.float32
    work_dtype = torch.float64 if out_dtype == torch.float64 else torch.float32
    img0 = image.to(work_dtype)
    a0_full = alpha.to(device=image.device, dtype=work_dtype).clamp(0.0, 1.0)
    h0, w0 = image.shape[-2:]
    eps = float(regularization)
    omega = float(gradient_weight)

    n_levels = max(1, math.ceil(math.log2(max(h0, w0))))
    fg = bg = None
    for level in range(n_levels + 1):
        h = max(1, round(h0 ** (level / n_levels)))
        w = max(1, round(w0 ** (level / n_levels)))
        img = _nearest(img0, (h, w))
        a = _nearest(a0_full, (h, w))
        if fg is None:
            fg = img.clone()
            bg = img.clone()
        else:
            fg = _nearest(fg, (h, w))
            bg = _nearest(bg, (h, w))
        n_iter = n_small_iterations if (h <= small_size and w <= small_size) else n_big_iterations
        if n_iter <= 0:
            continue

        # Per-level constants: neighbour weights and the inverse of the 2×2 system.
        weights = [eps + omega * (a - an).abs() for an in _neighbours(a)]
        wsum = weights[0] + weights[1] + weights[2] + weights[3]
        a1 = 1.0 - a
        m00 = a * a + wsum
        m11 = a1 * a1 + wsum
        m01 = a * a1
        inv_det = 1.0 / (m00 * m11 - m01 * m01)
        rhs_f = a * img
        rhs_b = a1 * img
        yy = torch.arange(h, device=img.device)[:, None]
        xx = torch.arange(w, device=img.device)[None, :]
        parity = ((yy + xx) % 2 == 0)
        for _ in range(n_iter):
            for colour in (parity, ~parity):
                nf = _neighbours(fg)
                nb = _neighbours(bg)
                sf = rhs_f.clone()
                sb = rhs_b.clone()
                for wd, fd, bd in zip(weights, nf, nb):
                    sf.addcmul_(wd, fd)
                    sb.addcmul_(wd, bd)
                new_f = (m11 * sf).sub_(m01 * sb).mul_(inv_det).clamp_(0.0, 1.0)
                new_b = (m00 * sb).sub_(m01 * sf).mul_(inv_det).clamp_(0.0, 1.0)
                del sf, sb, nf, nb
                fg = torch.where(colour, new_f, fg)
                bg = torch.where(colour, new_b, bg)
    fg = fg.to(out_dtype)
    if return_background:
        return fg, bg.to(out_dtype)
    return fg
