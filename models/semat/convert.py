"""SEMat checkpoint names -> the names of our modules (``SematModel.state_dict()``).

A released SEMat checkpoint is detectron2's ``{'model': SamHqMatte.state_dict(), ...}``:

- ``sam_model.image_encoder.base_model.model.*``: SAM's ViT wrapped by peft (LoRA adapters, see
  ``lora.py``), -> ``encoder.*`` after merging (SAM's own names, models/sam);
- ``sam_model.prompt_encoder.*`` -> ``prompt_encoder.*`` (SAM's names);
- ``sam_model.mask_decoder.*``: SAM's decoder parts -> ``mask_decoder.sam.*``; the matting tokens
  and features (and HQ-SAM's HQ token) -> ``mask_decoder.*`` under our names;
- ``condition_layer.patch_embed.proj.*``: the 4-channel patch embedding of image + box mask ->
  ``box_embed.*``;
- ``matting_decoder.*``: the detail decoder -> ``detail_decoder.*`` under our names.

Left out on purpose (they do not reach the matte): batch-norm step counters
(``num_batches_tracked``) and a frozen copy of SAM's decoder some trainings keep
(``sam_model.frozen_mask_decoder.*``, a training regulariser).
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

from .lora import merge_lora, strip_peft_names

ENCODER_PREFIX = "sam_model.image_encoder."
PROMPT_PREFIX = "sam_model.prompt_encoder."
DECODER_PREFIX = "sam_model.mask_decoder."
DETAIL_PREFIX = "matting_decoder."
BOX_EMBED_PREFIX = "condition_layer.patch_embed.proj."
UNUSED_PREFIXES = ("sam_model.frozen_mask_decoder.",)
UNUSED_SUFFIXES = (".num_batches_tracked",)

# Keys under sam_model.mask_decoder. that are SAM's own decoder.
_SAM_DECODER_PARTS = ("transformer.", "iou_token.", "mask_tokens.", "output_upscaling.", "output_hypernetworks_mlps.", "iou_prediction_head.")

# HQ-style branches: authors' nn.Sequential indices -> our attribute names.
_UPSCALE = {"0": "up1", "1": "norm", "3": "up2"}
_REFINE = {"0": "conv1", "1": "norm", "3": "conv2"}
_BRANCH_PARTS = {
    "compress_vit_feat": ("from_vit", _UPSCALE),
    "embedding_encoder": ("from_embedding", _UPSCALE),
    "embedding_maskfeature": ("refine", _REFINE),
}

# Detail decoder: Sequential(conv, norm, GELU, conv, norm) indices inside each basic_layer entry.
_PAIR = {"0": "conv1", "1": "norm1", "3": "conv2", "4": "norm2"}
_STEM = {"0": ("0", "conv"), "1": ("0", "norm"), "3": ("1", "conv"), "4": ("1", "norm")}
_CONV_NORM = {"0": "conv", "1": "norm"}


def encoder_tensors(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The image encoder's tensors under SAM's names, LoRA still separate (``<module>.lora_A``/``lora_B``)."""
    inner = {k[len(ENCODER_PREFIX) :]: v for k, v in tensors.items() if k.startswith(ENCODER_PREFIX)}
    return strip_peft_names(inner)


def _decoder_name(name: str) -> str | None:
    """A key under sam_model.mask_decoder. -> ours under mask_decoder. (None: not ours to load)."""
    if name.startswith(_SAM_DECODER_PARTS):
        return "sam." + name
    if name == "hf_token.weight":
        return "hq_token"
    if name == "matting_hf_token.weight":
        return "matting_tokens"
    match = re.match(r"^(matting_)?(hf_mlp|compress_vit_feat|embedding_encoder|embedding_maskfeature)\.(.+)$", name)
    if match is None:
        return None
    branch = "matting_branch" if match[1] else "hq_branch"
    part, rest = match[2], match[3]
    if part == "hf_mlp":
        return f"{branch}.token_mlp.{rest}"
    ours, indices = _BRANCH_PARTS[part]
    index, _, leaf = rest.partition(".")
    return f"{branch}.{ours}.{indices[index]}.{leaf}" if index in indices else None


def _detail_name(name: str) -> str | None:
    """A key under matting_decoder. -> ours under detail_decoder. (None: not ours to load)."""
    match = re.match(r"^big_kernel_process\.(\d+)\.(.+)$", name)
    if match:
        if match[1] not in _STEM:
            return None
        layer, part = _STEM[match[1]]
        return f"stem.{layer}.{part}.{match[2]}"
    match = re.match(r"^vit_feat_proj\.(\d+)\.(.+)$", name)
    if match:
        return f"vit_projections.{match[1]}.{match[2]}"
    match = re.match(r"^(vit_feat_aggregation|mid_layer)\.(\d+)\.(.+)$", name)
    if match:
        ours = "vit_fusion" if match[1] == "vit_feat_aggregation" else "bottleneck"
        return f"{ours}.{_CONV_NORM[match[2]]}.{match[3]}" if match[2] in _CONV_NORM else None
    match = re.match(r"^(down|up)_blks\.(\d+)\.(?:basic_layer\.(\d+)\.(\d+)|res_layer)\.(.+)$", name)
    if match:
        blocks = f"{match[1]}_blocks.{match[2]}"
        if match[3] is None:
            return f"{blocks}.shortcut.{match[5]}"
        # basic_layer alternates conv pairs (even indices) with parameterless GELUs (odd).
        if int(match[3]) % 2 or match[4] not in _PAIR:
            return None
        return f"{blocks}.stages.{int(match[3]) // 2}.{_PAIR[match[4]]}.{match[5]}"
    if name.startswith("matting_head."):
        return "alpha_head." + name[len("matting_head.") :]
    return None


def convert_semat_state(tensors: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(our state dict, checkpoint keys not used); LoRA merged into the encoder's weights."""
    state: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    for name, value in merge_lora(encoder_tensors(tensors)).items():
        state["encoder." + name] = value
    for key, value in tensors.items():
        if key.startswith(ENCODER_PREFIX):
            continue
        ours = None
        if key.endswith(UNUSED_SUFFIXES) or key.startswith(UNUSED_PREFIXES):
            ours = None
        elif key.startswith(PROMPT_PREFIX):
            ours = "prompt_encoder." + key[len(PROMPT_PREFIX) :]
        elif key.startswith(DECODER_PREFIX):
            inner = _decoder_name(key[len(DECODER_PREFIX) :])
            ours = None if inner is None else "mask_decoder." + inner
        elif key.startswith(BOX_EMBED_PREFIX):
            ours = "box_embed." + key[len(BOX_EMBED_PREFIX) :]
        elif key.startswith(DETAIL_PREFIX):
            inner = _detail_name(key[len(DETAIL_PREFIX) :])
            ours = None if inner is None else "detail_decoder." + inner
        if ours is None:
            unused.append(key)
        else:
            state[ours] = value
    return state, unused
