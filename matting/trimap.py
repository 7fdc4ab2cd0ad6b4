"""Trimaps from masks (kornia morphology) and trimap clean-up."""

from __future__ import annotations

import torch
from kornia.morphology import dilation, erosion

from .errors import PromptError


def disk(radius: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """A (2r+1)×(2r+1) disk-shaped structuring element of 0/1 (a filled circle of ``radius`` px)."""
    r = int(radius)
    ax = torch.arange(-r, r + 1, dtype=torch.float32)
    d2 = ax[:, None] ** 2 + ax[None, :] ** 2
    return (d2 <= (r + 0.5) ** 2 - 0.25).to(device=device, dtype=dtype)


def _as_batch(mask: torch.Tensor, what: str) -> tuple[torch.Tensor, bool]:
    if not isinstance(mask, torch.Tensor):
        raise PromptError(f"the {what} must be a tensor, got {type(mask).__name__}")
    if mask.dim() == 2:
        return mask[None], True
    if mask.dim() == 3:
        return mask, False
    raise PromptError(f"the {what} must be (batch, height, width), got shape {tuple(mask.shape)}")


def trimap_from_mask(mask: torch.Tensor, erode: int, dilate: int, threshold: float = 0.5) -> torch.Tensor:
    """Trimap (B, H, W) from a mask (B, H, W) in [0, 1].

    1 where the mask (``> threshold``) survives erosion by a disk of ``erode`` px
    (sure foreground), 0 outside its dilation by a disk of ``dilate`` px (sure
    background), 0.5 in the band between. Image borders do not erode the mask.
    A (H, W) mask gives a (H, W) trimap.
    """
    erode, dilate = int(erode), int(dilate)
    if erode < 0 or dilate < 0:
        raise PromptError(f"erode ({erode}) and dilate ({dilate}) must be 0 or more pixels")
    m, single = _as_batch(mask, "mask")
    dtype = m.dtype if m.is_floating_point() else torch.float32
    binary = (m.to(dtype) > threshold).to(dtype)[:, None]  # (B, 1, H, W)
    fg = binary
    if erode > 0:
        fg = erosion(binary, disk(erode, device=m.device, dtype=dtype))
    grown = binary
    if dilate > 0:
        grown = dilation(binary, disk(dilate, device=m.device, dtype=dtype))
    tri = torch.full_like(binary, 0.5)
    tri = torch.where(grown < 0.5, torch.zeros_like(tri), tri)
    tri = torch.where(fg > 0.5, torch.ones_like(tri), tri)
    tri = tri[:, 0]
    return tri[0] if single else tri


def clean_trimap(trimap: torch.Tensor) -> torch.Tensor:
    """Snap a trimap to 0 / 0.5 / 1: below 0.25 → 0, above 0.75 → 1, else 0.5. Shape kept."""
    t = trimap if trimap.is_floating_point() else trimap.to(torch.float32)
    out = torch.full_like(t, 0.5)
    out = torch.where(t < 0.25, torch.zeros_like(out), out)
    out = torch.where(t > 0.75, torch.ones_like(out), out)
    return out
