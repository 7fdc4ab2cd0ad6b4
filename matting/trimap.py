"""Trimaps from masks (kornia morphology) and trimap clean-up.

Small disks go through ``kornia.morphology``. Its cost grows with the disk's
area (a radius-15 disk takes tens of seconds on a 1024² mask on a CPU), so disks
larger than ``KORNIA_MAX_RADIUS`` use the exact equivalent for binary masks: a
pixel is in the dilation when the disk centred on it covers at least one mask
pixel, i.e. when the zero-padded convolution of the mask with the disk is
positive, computed with FFTs whatever the radius. Erosion is the complement of
the dilation of the complement. Both treat the outside of the image as kornia's
``geodesic`` border does: it neither grows nor erodes the mask.
"""

from __future__ import annotations

import torch
from kornia.morphology import dilation, erosion

KORNIA_MAX_RADIUS = 4

from .errors import PromptError


def disk(radius: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """A (2r+1)×(2r+1) disk-shaped structuring element of 0/1 (a filled circle of ``radius`` px)."""
    r = int(radius)
    ax = torch.arange(-r, r + 1, dtype=torch.float32)
    d2 = ax[:, None] ** 2 + ax[None, :] ** 2
    return (d2 <= (r + 0.5) ** 2 - 0.25).to(device=device, dtype=dtype)


def _fft_dilate(binary: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilation of a 0/1 (B, 1, H, W) mask by ``disk(radius)``, via an FFT convolution."""
    h, w = binary.shape[-2:]
    r = int(radius)
    ph, pw = h + 2 * r, w + 2 * r
    x = binary.to(torch.float64) if binary.dtype == torch.float64 else binary.to(torch.float32)
    k = disk(r, device=x.device, dtype=x.dtype)
    fx = torch.fft.rfft2(x, s=(ph, pw))
    fk = torch.fft.rfft2(k, s=(ph, pw))
    full = torch.fft.irfft2(fx * fk, s=(ph, pw))  # linear convolution, "full" size (H + 2r) × (W + 2r)
    count = full[..., r: r + h, r: r + w]
    return (count > 0.5).to(binary.dtype)


def _dilate(binary: torch.Tensor, radius: int) -> torch.Tensor:
    if radius <= 0:
        return binary
    if radius <= KORNIA_MAX_RADIUS:
        return dilation(binary, disk(radius, device=binary.device, dtype=binary.dtype))
    return _fft_dilate(binary, radius)


def _erode(binary: torch.Tensor, radius: int) -> torch.Tensor:
    if radius <= 0:
        return binary
    if radius <= KORNIA_MAX_RADIUS:
        return erosion(binary, disk(radius, device=binary.device, dtype=binary.dtype))
    return 1.0 - _fft_dilate(1.0 - binary, radius)


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
    fg = _erode(binary, erode)
    grown = _dilate(binary, dilate)
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
