"""A prompt made from an alpha matte: the previous frame's alpha (video), a low-resolution alpha
(full-resolution detail), in the form a family takes.

One rule per form, shared by every driver of the one-image pipeline:

* ``mask``: the alpha above ``threshold``, dilated by a disk of ``margin`` pixels (the subject
  may have moved that far);
* ``box``: the bounding box of the alpha above ``threshold``, grown by ``margin`` pixels on every
  side and clipped to the image;
* ``trimap``: sure foreground where the alpha above ``sure_foreground`` (``threshold`` unless
  given: the video follows the subject's body; the detail refinement passes 0.98 so every partly
  transparent pixel of a low-resolution alpha stays unknown) survives an erosion by ``margin`` px;
  sure background outside the dilation by ``margin`` px of every pixel the alpha touches at all
  (above ``SOFT_EDGE``, so the faint tips of hair stay in the unknown band); unknown between;
* ``auto``: no prompt.

A family gets the first form it takes in the order mask, box, trimap, auto
(:func:`alpha_prompt_kind`): a mask says most about the shape (SDMatte was trained with masks; MAM
and SEMat use its bounding box), a box next, a trimap for the families that take nothing else
(SIM), no prompt for automatic ones (AIM).

Points are not a form an alpha is turned into: a few clicks say less than the mask they would
come from, and every family that takes clicks takes a mask or a box too.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from .errors import PromptError
from .prompt import Prompt

FORMS = ("mask", "box", "trimap", "auto")
SOFT_EDGE = 0.02  # alpha above this counts as "touched by the subject" for the trimap's outer edge


def dilate(binary: torch.Tensor, radius: float) -> torch.Tensor:
    """A (H, W) 0/1 mask dilated by the disk of ``radius`` px of :func:`matting.trimap.disk` (the
    same pixels as ``trimap_from_mask``'s dilation), from the exact Euclidean distance to the mask:
    linear in the image's size whatever the radius."""
    m = binary.detach().cpu().numpy() > 0.5
    r = int(round(radius))
    if r <= 0 or not m.any():
        return torch.from_numpy(m.astype(np.float32))
    distance2 = distance_transform_edt(~m) ** 2
    return torch.from_numpy((distance2 <= (r + 0.5) ** 2 - 0.25 + 1e-9).astype(np.float32))


def erode(binary: torch.Tensor, radius: float) -> torch.Tensor:
    """The complement of the dilation of the complement; the image's border does not erode."""
    m = binary.detach().cpu() > 0.5
    if int(round(radius)) <= 0:
        return m.float()
    return 1.0 - dilate((~m).float(), radius)


def _alpha_2d(alpha) -> torch.Tensor:
    t = alpha if isinstance(alpha, torch.Tensor) else torch.as_tensor(alpha)
    if t.dim() == 3 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 2:
        raise PromptError(f"the alpha has shape {tuple(t.shape)}; give one (height, width) alpha")
    return t.detach().to(device="cpu", dtype=torch.float32)


def alpha_box(alpha, threshold: float = 0.5) -> tuple | None:
    """(x1, y1, x2, y2) pixels, end-exclusive, around the alpha above ``threshold``; None if nothing is."""
    a = _alpha_2d(alpha) > threshold
    rows = torch.nonzero(a.any(dim=1))
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(a.any(dim=0))
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def grow_box(box, margin: float, height: int, width: int) -> tuple:
    """``box`` grown by ``margin`` pixels on every side, clipped to a (height, width) image."""
    x1, y1, x2, y2 = box
    return (max(0.0, x1 - margin), max(0.0, y1 - margin), min(float(width), x2 + margin),
            min(float(height), y2 + margin))


def alpha_prompt_kind(prompt_kinds) -> str:
    """The form to make from an alpha for a family that takes ``prompt_kinds`` (see the module)."""
    for form in FORMS:
        if form in tuple(prompt_kinds):
            return form
    raise PromptError(
        f"a family that takes only {', '.join(prompt_kinds) or 'nothing'} cannot be prompted with an alpha; "
        f"it needs one of {', '.join(FORMS)}"
    )


def subject_present(alpha, form: str, threshold: float = 0.5) -> bool:
    """Whether :func:`prompt_from_alpha` has something to make a ``form`` prompt from."""
    if form == "auto":
        return True
    a = _alpha_2d(alpha)
    return bool((a > (SOFT_EDGE if form == "trimap" else threshold)).any())


def prompt_from_alpha(alpha, form: str, margin: float = 0, threshold: float = 0.5,
                      sure_foreground: float | None = None) -> Prompt | None:
    """The prompt of ``form`` ("mask", "box", "trimap" or "auto") that an alpha (H, W) in [0, 1]
    gives, with ``margin`` pixels of room (see the module's rules); None when the alpha holds
    nothing to prompt with (:func:`subject_present`). "auto" gives ``Prompt.auto()``."""
    if form not in FORMS:
        raise PromptError(f"unknown prompt form {form!r}; use one of {', '.join(FORMS)}")
    if form == "auto":
        return Prompt.auto()
    margin = float(margin)
    if not (math.isfinite(margin) and margin >= 0):
        raise PromptError(f"the margin {margin} must be 0 or more pixels")
    a = _alpha_2d(alpha)
    height, width = a.shape
    if not subject_present(a, form, threshold):
        return None
    core = (a > threshold).to(torch.float32)
    radius = int(round(margin))
    if form == "box":
        box = grow_box(alpha_box(a, threshold), margin, height, width)
        return Prompt.from_box(*box, source_size=(height, width))
    if form == "mask":
        return Prompt.from_mask(dilate(core, radius))
    level = threshold if sure_foreground is None else float(sure_foreground)
    sure = erode((a >= level if sure_foreground is not None else a > level).to(torch.float32), radius)
    reach = dilate((a > SOFT_EDGE).to(torch.float32), radius)
    trimap = torch.where(reach > 0.5, 0.5, 0.0)
    trimap = torch.where(sure > 0.5, 1.0, trimap)
    return Prompt.from_trimap(trimap)


__all__ = ["FORMS", "SOFT_EDGE", "alpha_box", "alpha_prompt_kind", "dilate", "erode", "grow_box", "prompt_from_alpha",
           "subject_present"]
