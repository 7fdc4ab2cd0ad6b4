"""What a matting family provides, and the one call every family's model answers.

A family (SDMatte, MAM, AIM, SIM, SEMat) lives in its own folder under ``models/`` and exports a
``FAMILY = Family(...)``. ``load_matting_model`` reads a checkpoint once, asks each family whether
it recognises the tensor names and shapes, and hands the weights to that family's ``load``.

Every loaded model is an ``nn.Module`` with:

- ``family`` (str, e.g. ``"sdmatte"``, ``"litesdmatte"``, ``"mam"``) and ``prompt_kinds``, the
  subset of ``KINDS`` it accepts;
- ``works_at_input_size`` (bool): False (SDMatte) means the pipeline resizes the image to the
  working resolution (multiples of 8) before the call; True means the image arrives at its own
  size (or its crop's) and the family applies its authors' own resizing, padding and
  normalisation inside ``forward``, returning alpha at that same size;
- ``forward(image, prompt_map, coords, kind, transparent, caption=None) -> alpha``:
  image (B, 3, H, W) RGB in [0, 1]; prompt_map (B, 1, H, W) in [0, 1] (the mask, the trimap as
  0 / 0.5 / 1, blurred clicks, the box's rectangle, or ones); coords (B, 20) for kind "point" (up
  to ten (x / W, y / H) clicks in click order, zero padded), else (B, 4) ``[x1/W, y1/H, x2/W, y2/H]``
  (a box: x2, y2 end-exclusive; a mask: its nonzero pixels' bounding box, last indices); kind one
  of ``prompt_kinds``; transparent (B,) bool. Families ignore the inputs they have no use for
  (only SDMatte reads ``transparent`` and ``caption``). Returns (B, 1, H, W) in [0, 1] on
  ``image``'s device;
- for families that work at input size, ``detail_size(height, width) -> (h, w)``: the size an input
  of (height, width) is resolved at (their own resize: SAM's 1024 frame, AIM's 1080 rule; SIM: a
  cap on its memory). The pipeline's detail path (``matting/detail.py``) sends larger inputs at that
  size and brings the alpha back itself; without the method a family is always given its input;
- ``device`` and ``dtype`` (of its main weights) and ``inference_memory_bytes(batch, height,
  width)``: working memory of one forward pass at that input size, weights excluded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

from .errors import CheckpointError

if TYPE_CHECKING:
    import torch

    from .checkpoint import LoadedWeights

KINDS = ("point", "box", "mask", "trimap", "auto")

ShapeMap = Mapping[str, tuple]


@dataclass(frozen=True)
class Companion:
    """A second weights file a family needs beside its checkpoint (MAM: SAM's; SIM: its classifier)."""

    role: str  # short name, e.g. "sam" or "classifier"
    description: str  # for messages: "the Segment Anything ViT-B checkpoint"
    file_names: tuple[str, ...]  # names looked for, preferred first
    folder: str  # the ComfyUI model folder it is usually kept in, e.g. "sams"


# Given a companion, the path of a file that provides it, or None when none is found. The nodes
# look in ComfyUI's folders and beside the checkpoint; tests pass a dict's ``get``.
FindCompanion = Callable[[Companion], "str | os.PathLike | None"]


class MissingCompanionError(CheckpointError):
    """A family's second weights file was not found; ``companion`` says which and where it goes."""

    def __init__(self, family_title: str, companion: Companion, looked_in: str = ""):
        self.companion = companion
        where = f" (looked in {looked_in})" if looked_in else ""
        super().__init__(
            f"{family_title} needs {companion.description}: put {' or '.join(companion.file_names)} in "
            f"ComfyUI's models/{companion.folder}/ folder or beside the checkpoint{where}."
        )


@dataclass(frozen=True)
class Family:
    """One matting system: how to recognise its checkpoints and how to load them.

    recognises(shapes): True when the flat tensor names -> shapes of a checkpoint (after the
        usual unwrapping: ``state_dict``/``model`` nesting and ``module.`` stripped) are this
        family's. Must not read tensor values.
    load(weights, *, source, source_name, device, dtype, find_companion): the model, built
        from ``weights.tensors`` (lazy views of a file map when ``weights.memory_mapped``) read
        from ``source`` (a path or a state dict). ``dtype`` None means the family's own default
        (float32). Accept and ignore options you have no use for (``**_``).
    diagnose(shapes): optional; for a file no family recognises, what it looks like from this
        family's point of view (e.g. "a Stable Diffusion 2 checkpoint ...") or None.
    """

    name: str  # "sdmatte", "mam", "aim", "sim", "semat"
    title: str  # "Matting Anything (MAM)"
    prompt_kinds: tuple[str, ...]
    looks_like: str  # what its checkpoint holds, for the error listing every family
    recognises: Callable[[ShapeMap], bool]
    load: Callable[..., "torch.nn.Module"]
    companions: tuple[Companion, ...] = ()
    diagnose: Callable[[ShapeMap], "str | None"] | None = None


def find_required(family: Family, companion: Companion, find_companion: FindCompanion | None) -> str:
    """The path of ``companion``, or a ``MissingCompanionError`` that says which file and where."""
    path = find_companion(companion) if find_companion is not None else None
    if path is None or not os.path.isfile(path):
        raise MissingCompanionError(family.title, companion)
    return os.fspath(path)
