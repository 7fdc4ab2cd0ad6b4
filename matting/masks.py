"""Masks as other nodes hand them over: one shape, one dtype, one rule for several masks.

SAM node packs and detectors emit masks in many forms: (H, W) for one mask, (B, H, W) as ComfyUI's
MASK type is meant to be, (B, 1, H, W) or (B, H, W, 1) from code that kept a channel axis, bool or
uint8 (0/1 or 0..255) as well as float, several masks for one image (one per detected object) and
an all-zero mask when the detector found nothing. Every node that takes a MASK goes through
:func:`mask_batch`; the prompt nodes then apply one :data:`COMBINE_MODES` rule to a batch.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import PromptError

# union: the masks joined into one (the pixelwise maximum); largest: only the mask with the most
# subject pixels; each: every mask on its own (one prompt, hence one matte, per mask).
COMBINE_MODES = ("union", "largest", "each")

UPSTREAM_HINT = (
    "the node that made it found nothing: with 'GroundingDinoSAMSegment (segment anything)' lower its "
    "threshold or change its prompt text; with a SAM 2 node move the clicks or the box onto the subject; "
    "or disconnect the prompt to matte automatically (families that can: SDMatte, SEMat, AIM)"
)


def mask_batch(value, what: str = "mask") -> torch.Tensor:
    """``value`` as (B, H, W) float32 on the CPU, values in [0, 1] for 0/1, bool and 0..255 masks.

    Accepted: (H, W), (B, H, W), (B, 1, H, W), (B, H, W, 1), torch tensors or numpy arrays of float,
    bool or integer dtype (integer masks whose largest value is above 1 are read as 0..255).
    """
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise PromptError(f"the {what} must be a MASK (a tensor), got {type(value).__name__}; connect a MASK output")
    t = value.detach()
    shape = tuple(t.shape)
    if t.dim() == 2:
        t = t[None]
    elif t.dim() == 4 and t.shape[1] == 1:
        t = t[:, 0]
    elif t.dim() == 4 and t.shape[-1] == 1:
        t = t[..., 0]
    if t.dim() != 3:
        raise PromptError(
            f"the {what} has shape {shape}; a MASK is (batch, height, width) (also accepted: (height, width), "
            "(batch, 1, height, width), (batch, height, width, 1)): connect a MASK output, not an IMAGE"
        )
    if t.shape[0] < 1 or t.shape[1] < 1 or t.shape[2] < 1:
        raise PromptError(f"the {what} is empty (shape {shape}); connect a MASK with at least one pixel")
    if t.dtype == torch.bool:
        t = t.to(torch.float32)
    elif not t.is_floating_point():
        t = t.to(torch.float32)
        if float(t.max()) > 1.0:
            t = t / 255.0
    return t.to(device="cpu", dtype=torch.float32)


def combine_masks(masks: torch.Tensor, mode: str, threshold: float = 0.5, what: str = "mask") -> torch.Tensor:
    """A (B, H, W) batch under ``mode`` (see :data:`COMBINE_MODES`); (1, H, W) for union and largest.

    An all-zero result (nothing above ``threshold``) is refused with what to change upstream. With
    ``each``, every mask must hold the subject: an empty one is named by its position.
    """
    if mode not in COMBINE_MODES:
        raise PromptError(f"combine {mode!r} must be one of {', '.join(COMBINE_MODES)}")
    present = (masks > threshold).flatten(1).sum(dim=1)
    n = masks.shape[0]
    if not bool((present > 0).any()):
        several = f"all {n} {what}s are" if n > 1 else f"the {what} is"
        raise PromptError(
            f"{several} empty: no pixel is above the threshold {threshold:g} (largest value "
            f"{float(masks.max()):.3g}); draw the subject in the mask or lower the threshold, or, if a "
            f"detector made it, {UPSTREAM_HINT}"
        )
    if mode == "union":
        return masks.amax(dim=0, keepdim=True)
    if mode == "largest":
        return masks[int(torch.argmax(present))][None]
    empty = [str(i + 1) for i in range(n) if int(present[i]) == 0]
    if empty:
        raise PromptError(
            f"{what} {', '.join(empty)} of {n} is empty (no pixel above {threshold:g}) while combine is 'each'; "
            f"{UPSTREAM_HINT}; or set combine to 'union' to use the masks that hold something"
        )
    return masks
