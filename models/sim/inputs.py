"""What SIM's networks read, made from the image and the trimap as the authors' test script does.

The authors read 8-bit files, pad them with OpenCV, and make the trimap's inputs with NumPy and
OpenCV; here the same values come from torch and SciPy:

- the trimap in the authors' units 0 / 128 / 255 (ours is 0 / 0.5 / 1);
- bottom/right padding to the next multiple of 8 strictly above the size (1 to 8 pixels), by
  mirroring that repeats the edge pixel (OpenCV's BORDER_REFLECT: ``...cba|abc...``);
- ImageNet normalisation of RGB in [0, 1];
- two trimap planes: background (trimap == 0) and foreground (trimap == 255);
- six "click" maps: for each plane, exp(-d^2 / (2 s^2)) with d the Euclidean distance to the
  plane's nearest pixel and s = 0.02 L, 0.08 L, 0.16 L (L = 320); all zero for an empty plane.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD_MULTIPLE = 8
CLICK_SCALE = 320
CLICK_WIDTHS = (0.02, 0.08, 0.16)  # times CLICK_SCALE

BACKGROUND, UNKNOWN, FOREGROUND = 0.0, 128.0, 255.0


def trimap_in_authors_units(prompt_map: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) trimap 0 / 0.5 / 1 -> (B, 1, H, W) float 0 / 128 / 255.

    Values are snapped to the nearest of the three levels (as the Trimap prompt node does), so a
    resampled trimap still has exactly three regions.
    """
    level = torch.round(prompt_map.float().clamp(0, 1) * 2)  # 0, 1, 2
    return torch.where(level == 0, BACKGROUND, torch.where(level == 2, FOREGROUND, UNKNOWN)).to(prompt_map.device)


def padded_size(size: int) -> int:
    """The authors' ``(size // 8 + 1) * 8``: always 1 to 8 pixels more (8 when already a multiple)."""
    return (size // PAD_MULTIPLE + 1) * PAD_MULTIPLE


def _mirror_indices(size: int, new_size: int, device) -> torch.Tensor:
    """Source index of each of ``new_size`` positions when mirroring with the edge repeated.

    OpenCV's BORDER_REFLECT, also for pads longer than the image: the sequence is periodic with
    period 2 * size (``abc|cba|abc...``).
    """
    position = torch.arange(new_size, device=device) % (2 * size)
    return torch.where(position < size, position, 2 * size - 1 - position)


def pad_bottom_right(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, padded_size(H), padded_size(W)), mirrored below and to the right."""
    height, width = x.shape[-2:]
    rows = _mirror_indices(height, padded_size(height), x.device)
    cols = _mirror_indices(width, padded_size(width), x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def normalise(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> ImageNet-normalised."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image - mean) / std


def trimap_planes(trimap: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) trimap 0 / 128 / 255 -> (B, 2, H, W): [background, foreground] as 0 / 1."""
    return torch.cat([trimap == BACKGROUND, trimap == FOREGROUND], dim=1).float()


def click_maps(planes: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) trimap planes -> (B, 6, H, W) Gaussians of the distance to each plane.

    Channels: background at the three widths, then foreground at the three widths. The exact
    Euclidean distance transform (SciPy's, as OpenCV's DIST_L2 with its precise mask) runs on
    the CPU; the exponentials are taken in float32 like the authors' NumPy code.
    """
    batch, _, height, width = planes.shape
    out = torch.zeros(batch, 6, height, width, dtype=torch.float32)
    marked = planes.detach().to("cpu") > 0.5
    for b in range(batch):
        for plane in range(2):
            region = marked[b, plane].numpy()
            if not region.any():
                continue  # the authors leave an empty plane's maps at zero
            distance = torch.from_numpy(distance_transform_edt(~region).astype(np.float32))
            negative_squared = -(distance**2)
            for k, fraction in enumerate(CLICK_WIDTHS):
                out[b, 3 * plane + k] = torch.exp(negative_squared / (2 * (fraction * CLICK_SCALE) ** 2))
    return out.to(planes.device)
