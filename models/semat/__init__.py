"""SEMat ("Towards Natural Image Matting in the Wild via Real-Scenario Prior", Xia et al., ICLR 2025)
as a PromptMatte family.

One file holds everything (``SEMat_SAM.pth``, ``SEMat_HQ-SAM.pth``): SAM ViT-L with LoRA
adapters, the box-mask patch embedding, the matting mask decoder and the detail decoder, as
detectron2 saved them (``{'model': ...}``, peft names). The variant is read from the tensors (an
HQ token means HQ-SAM). SEMat (SAM2) is recognised and refused with a clear message.
Weights: CC BY-NC 4.0 (non-commercial use).
"""

from __future__ import annotations

import logging

import torch

from ..errors import CheckpointError
from ..family import Family
from .config import BOX_EMBED_KEY, HQ_TOKEN_KEY, MATTING_TOKEN_KEY, SAM2_MARKER, SematConfig, read_semat_config
from .convert import convert_semat_state
from .lora import merge_lora, strip_peft_names
from .model import PIXEL_MEAN, PIXEL_STD, PROMPT_KINDS, SematModel

logger = logging.getLogger(__name__)


def recognises(shapes) -> bool:
    """SEMat's checkpoints have matting tokens in SAM's decoder and the box mask's patch embedding
    (a 4-channel 16x16 convolution; SAM2's variant embeds it inside Hiera's trunk instead)."""
    tokens = shapes.get(MATTING_TOKEN_KEY)
    if tokens is None or len(tokens) != 2:
        return False
    box = shapes.get(BOX_EMBED_KEY)
    if box is not None:
        return len(box) == 4 and box[1] == 4
    return any(SAM2_MARKER in key for key in shapes)


def build_semat(tensors, dtype: torch.dtype | None = None) -> SematModel:
    """A ``SematModel`` from a SEMat checkpoint's flat tensors (LoRA merged), built on meta and assigned."""
    shapes = {key: tuple(value.shape) for key, value in tensors.items()}
    config = read_semat_config(shapes)
    state, unused = convert_semat_state(tensors)
    with torch.device("meta"):
        model = SematModel(config)
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    misshapen = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items() if k in state and state[k].shape != v.shape]
    unexpected = [key for key in state if key not in expected]
    if missing or misshapen or unexpected:
        details = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing[:4])}" if missing else "",
                f"misshapen {', '.join(misshapen[:3])}" if misshapen else "",
                f"unknown {', '.join(unexpected[:4])}" if unexpected else "",
            )
            if part
        )
        raise CheckpointError(f"not a SEMat checkpoint this version can read: {details}")
    if unused:
        logger.info("SEMat: %d checkpoint tensors not used by the matte (e.g. %s)", len(unused), ", ".join(unused[:3]))
    target = dtype or torch.float32
    state = {k: (v.to(target) if v.is_floating_point() and v.dtype != target else v) for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    # Not in the file: real tensors on the weights' device.
    model.pixel_mean = torch.tensor(PIXEL_MEAN, device=model.device).view(1, 3, 1, 1)
    model.pixel_std = torch.tensor(PIXEL_STD, device=model.device).view(1, 3, 1, 1)
    return model.eval()


def load(weights, *, source_name: str = "the checkpoint", device=None, dtype=None, find_companion=None, **_) -> SematModel:
    """The SEMat model from ``weights`` (a ``LoadedWeights``); no companion file is needed."""
    try:
        model = build_semat(weights.tensors, dtype)
    except CheckpointError as error:
        raise CheckpointError(f"{source_name}: {error}") from None
    if device is not None:
        model = model.to(device)
    return model


FAMILY = Family(
    name="semat",
    title="SEMat",
    prompt_kinds=PROMPT_KINDS,
    looks_like=(
        "SAM ViT-L with LoRA adapters (sam_model.image_encoder.base_model.model.*), matting tokens "
        "(sam_model.mask_decoder.matting_hf_token) and a box-mask patch embedding "
        "(condition_layer.patch_embed), e.g. SEMat_SAM.pth or SEMat_HQ-SAM.pth"
    ),
    recognises=recognises,
    load=load,
)

__all__ = [
    "FAMILY",
    "HQ_TOKEN_KEY",
    "SematConfig",
    "SematModel",
    "build_semat",
    "load",
    "merge_lora",
    "read_semat_config",
    "recognises",
    "strip_peft_names",
]
