"""An alpha matte turned into the prompt a family takes (mask, box or trimap).

Drivers of the one-image pipeline prompt a model with an alpha they already have: the detail
refinement prompts each full-resolution tile with the low-resolution alpha there, and a video
carries one frame's alpha to the next. Both say which form the family takes (its
``prompt_kinds``) and get a :class:`~.prompt.Prompt` in the alpha's pixels.
"""

from __future__ import annotations

import torch

from .errors import PromptError
from .prompt import Prompt, _as_2d_tensor

ALPHA_PROMPT_KINDS = ("mask", "box", "trimap", "auto")
# A family that takes several forms gets the first it takes: a mask says most about the shape
# (SDMatte was trained with masks; MAM and SEMat use its bounding box), a box next, a trimap for
# the families that take nothing else (SIM), no prompt for automatic ones (AIM).
PREFERENCE = ALPHA_PROMPT_KINDS
SUBJECT_THRESHOLD = 0.5  # alpha above it is the subject, for a mask and a box
CERTAIN_TOLERANCE = 0.02  # alpha within it of 0 or 1 is certain, for a trimap


def alpha_prompt_kind(prompt_kinds) -> str:
    """The prompt form to make from an alpha for a family that takes ``prompt_kinds``."""
    for kind in PREFERENCE:
        if kind in tuple(prompt_kinds):
            return kind
    raise PromptError(
        f"a family that takes only {', '.join(prompt_kinds) or 'nothing'} cannot be prompted with an alpha; "
        f"it needs one of {', '.join(ALPHA_PROMPT_KINDS)}"
    )


def subject_present(alpha: torch.Tensor, kind: str) -> bool:
    """Whether ``prompt_from_alpha(alpha, kind)`` has something to prompt with (else it raises)."""
    if kind in ("mask", "box"):
        return bool((alpha > SUBJECT_THRESHOLD).any())
    if kind == "trimap":
        return bool((alpha > CERTAIN_TOLERANCE).any())
    return True


def prompt_from_alpha(alpha, kind: str, margin: int = 0) -> Prompt:
    """The prompt of form ``kind`` ("mask", "box", "trimap" or "auto") that an alpha (H, W) in
    [0, 1] makes, in the alpha's pixels.

    mask: alpha > 0.5 (grown by ``margin`` px when given). box: the bounding box of alpha > 0.5
    grown by ``margin`` px on every side, inside the image. trimap: 1 where alpha >= 0.98 survives
    an erosion by ``margin`` px, 0 beyond ``margin`` px of any alpha > 0.02, 0.5 between (every
    partly transparent pixel is unknown). auto: no prompt.
    Raises :class:`PromptError` when the alpha holds no subject for the form (test first with
    :func:`subject_present`).
    """
    from .trimap import _dilate, _erode  # noqa: PLC0415  (kornia's morphology, only when needed)

    if kind not in ALPHA_PROMPT_KINDS:
        raise PromptError(f"cannot make a {kind!r} prompt from an alpha; use one of {', '.join(ALPHA_PROMPT_KINDS)}")
    margin = int(margin)
    if margin < 0:
        raise PromptError(f"margin {margin} must be 0 or more pixels")
    if kind == "auto":
        return Prompt.auto()
    a = _as_2d_tensor(alpha, "alpha")
    height, width = a.shape
    if not subject_present(a, kind):
        raise PromptError(f"the alpha has no subject (nothing above {SUBJECT_THRESHOLD}) to make a {kind} from")
    subject = (a > SUBJECT_THRESHOLD).to(torch.float32)
    if kind == "mask":
        grown = _dilate(subject[None, None], margin)[0, 0] if margin else subject
        return Prompt.from_mask(grown)
    if kind == "box":
        rows = torch.nonzero(subject.any(dim=1))[:, 0]
        cols = torch.nonzero(subject.any(dim=0))[:, 0]
        x1, x2 = max(0, int(cols[0]) - margin), min(width, int(cols[-1]) + 1 + margin)
        y1, y2 = max(0, int(rows[0]) - margin), min(height, int(rows[-1]) + 1 + margin)
        return Prompt.from_box(x1, y1, x2, y2, source_size=(height, width))
    opaque = (a >= 1.0 - CERTAIN_TOLERANCE).to(torch.float32)[None, None]
    touched = (a > CERTAIN_TOLERANCE).to(torch.float32)[None, None]
    sure_foreground = _erode(opaque, margin)[0, 0] > 0.5
    reach = _dilate(touched, margin)[0, 0] > 0.5
    trimap = torch.where(reach, torch.full_like(a, 0.5), torch.zeros_like(a))
    trimap = torch.where(sure_foreground, torch.ones_like(a), trimap)
    return Prompt.from_trimap(trimap)
