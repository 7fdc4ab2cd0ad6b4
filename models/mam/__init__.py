"""Matting Anything (MAM, Li et al., 2023) as a PromptMatte family.

A checkpoint such as ``mam_vitb.pth`` holds only the Mask-to-Matte module; the Segment Anything
model it refines comes from a companion file (ViT-B's ``sam_vit_b_01ec64.pth`` by default; the
node lets the user pick a ViT-L or ViT-H file instead, and its size is read from its shapes).
"""

from __future__ import annotations

import os

import torch

from ..checkpoint import read_weights
from ..errors import CheckpointError
from ..family import Companion, Family, find_required
from ..sam import SAM_FILE_NAMES, build_sam, looks_like_sam, size_name
from .config import M2mConfig, looks_like_m2m, read_m2m_config
from .model import PROMPT_KINDS, MattingAnything
from .network import MaskToMatte
from .spectral_norm import fold_spectral_norm

SAM_COMPANION = Companion(
    "sam", "a Segment Anything checkpoint (ViT-B by default)", (SAM_FILE_NAMES["vit_b"],), "sams"
)


def recognises(shapes) -> bool:
    return looks_like_m2m(shapes)


def diagnose(shapes) -> str | None:
    """A SAM file given as the matting checkpoint: say where it goes instead."""
    if looks_like_sam(shapes):
        return (
            "a Segment Anything (SAM) checkpoint: Matting Anything reads it beside its own file "
            f"(mam_vitb.pth); put it in ComfyUI's models/{SAM_COMPANION.folder}/ and load the MAM checkpoint"
        )
    return None


def build_m2m(tensors, dtype: torch.dtype | None = None) -> MaskToMatte:
    """The M2M module from its checkpoint tensors (spectral norm folded), built on meta and assigned."""
    shapes = {key: tuple(value.shape) for key, value in tensors.items()}
    config = read_m2m_config(shapes)
    folded = fold_spectral_norm(tensors)
    with torch.device("meta"):
        module = MaskToMatte(config)
    expected = module.state_dict()
    missing = [key for key in expected if key not in folded]
    unexpected = [key for key in folded if key not in expected]
    misshapen = [f"{k} {tuple(folded[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items() if k in folded and folded[k].shape != v.shape]
    if missing or unexpected or misshapen:
        details = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing[:4])}" if missing else "",
                f"unknown {', '.join(unexpected[:4])}" if unexpected else "",
                f"misshapen {', '.join(misshapen[:3])}" if misshapen else "",
            )
            if part
        )
        raise CheckpointError(f"not a Matting Anything (M2M) checkpoint this version can read: {details}")
    target = dtype or torch.float32
    state = {k: (v.to(target) if v.is_floating_point() else v) for k, v in folded.items()}
    module.load_state_dict(state, strict=True, assign=True)
    return module.requires_grad_(False).eval()


def load(weights, *, source_name: str = "the checkpoint", device=None, dtype=None, find_companion=None, **_) -> MattingAnything:
    """The MAM model: M2M from ``weights``, SAM from the companion file ``find_companion`` gives.

    The M2M tensors do not say which SAM size they were trained with (ViT-B for ``mam_vitb.pth``):
    the pairing is the companion's choice; its size is read from its shapes. A SAM whose image
    embedding is not as wide as M2M's input cannot be paired and is refused.
    """
    m2m = build_m2m(weights.tensors, dtype)
    sam_path = find_required(FAMILY, SAM_COMPANION, find_companion)
    sam_weights = read_weights(sam_path)
    shapes = {key: tuple(value.shape) for key, value in sam_weights.tensors.items()}
    if not looks_like_sam(shapes):
        raise CheckpointError(
            f"{os.path.basename(sam_path)} is not a Segment Anything checkpoint: Matting Anything needs "
            f"{SAM_COMPANION.description} such as {SAM_FILE_NAMES['vit_b']} in models/{SAM_COMPANION.folder}/"
        )
    sam = build_sam(sam_weights.tensors, dtype=dtype or torch.float32)
    if sam.config.out_chans != m2m.config.embedding_channels:
        raise CheckpointError(
            f"{os.path.basename(sam_path)} gives {sam.config.out_chans}-channel image embeddings but "
            f"{source_name}'s Mask-to-Matte module reads {m2m.config.embedding_channels}: pair it with "
            "the SAM it was trained with"
        )
    model = MattingAnything(sam, m2m, size_name(sam.config)).requires_grad_(False)
    if device is not None:
        model = model.to(device)
    return model.eval()


FAMILY = Family(
    name="mam",
    title="Matting Anything (MAM)",
    prompt_kinds=PROMPT_KINDS,
    looks_like="the Mask-to-Matte module (layer2/layer3/layer4 spectral-norm convolutions, refine_OS1/4/8 heads), e.g. mam_vitb.pth; needs a SAM checkpoint beside it",
    recognises=recognises,
    load=load,
    companions=(SAM_COMPANION,),
    diagnose=diagnose,
)

__all__ = ["FAMILY", "M2mConfig", "MaskToMatte", "MattingAnything", "build_m2m", "load", "recognises"]
