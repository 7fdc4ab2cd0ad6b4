"""SEMat's architecture, read from the tensor shapes of a checkpoint (never from its file name).

What the shapes give: SAM's whole configuration (models/sam reads it: ViT width, depth, heads
from the relative-position tables, global blocks, window size), the number of matting tokens
(``matting_hf_token`` rows), the HQ-SAM variant (an ``hf_token`` is present), the box-mask patch
embedding's channels, and every width and kernel of the detail decoder. What they cannot give is
fixed by the authors' configs (configs/SEMat_SAM.py, SEMat_HQ-SAM.py): LoRA alpha 16, logits
divided by 6.5 before the detail decoder, batch-norm eps 1e-5.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from ..errors import CheckpointError
from ..sam import SamConfig, read_sam_config
from .convert import BOX_EMBED_PREFIX, DECODER_PREFIX, DETAIL_PREFIX, ENCODER_PREFIX
from .detail_decoder import DetailDecoderConfig
from .lora import strip_peft_names
from .matting_decoder import MattingDecoderConfig

ShapeMap = Mapping[str, tuple]

MATTING_TOKEN_KEY = DECODER_PREFIX + "matting_hf_token.weight"
HQ_TOKEN_KEY = DECODER_PREFIX + "hf_token.weight"
BOX_EMBED_KEY = BOX_EMBED_PREFIX + "weight"
SAM2_MARKER = "bbox_mask_patch_embed"  # SEMat (SAM2): the box mask is embedded inside Hiera's trunk


@dataclass(frozen=True)
class SematConfig:
    sam: SamConfig
    matting: MattingDecoderConfig
    detail: DetailDecoderConfig
    box_embed_channels: int  # 4: RGB + the box mask

    @property
    def variant(self) -> str:
        """"hq-sam" when the HQ token is present, else "sam"."""
        return "hq-sam" if self.matting.has_hq_token else "sam"


def _need(shapes: ShapeMap, key: str) -> tuple:
    if key not in shapes:
        raise CheckpointError(f"not a complete SEMat checkpoint: it has no {key!r} tensor")
    return tuple(shapes[key])


def _indices(shapes: ShapeMap, pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in shapes if (m := regex.match(k))})


def _sam_shapes(shapes: ShapeMap) -> dict[str, tuple]:
    """The checkpoint's SAM tensors with the encoder's peft names replaced by SAM's own."""
    encoder = {k[len(ENCODER_PREFIX) :]: v for k, v in shapes.items() if k.startswith(ENCODER_PREFIX)}
    renamed = {ENCODER_PREFIX + k: v for k, v in strip_peft_names(encoder).items()}
    renamed.update({k: v for k, v in shapes.items() if k.startswith("sam_model.") and not k.startswith(ENCODER_PREFIX)})
    return renamed


def _read_detail(shapes: ShapeMap, vit_channels: int) -> DetailDecoderConfig:
    d = DETAIL_PREFIX
    stem = []
    for index in (0, 3):  # the stem's two convolutions (1, 2, 4, 5 are norms and GELUs)
        key = f"{d}big_kernel_process.{index}.weight"
        if key in shapes:
            stem.append(tuple(shapes[key]))
    projections = _indices(shapes, re.escape(d) + r"vit_feat_proj\.(\d+)\.weight")
    downs = _indices(shapes, re.escape(d) + r"down_blks\.(\d+)\.res_layer\.weight")
    ups = _indices(shapes, re.escape(d) + r"up_blks\.(\d+)\.res_layer\.weight")
    stages = _indices(shapes, re.escape(d) + r"down_blks\.0\.basic_layer\.(\d+)\.0\.weight")
    if not projections or not downs or len(downs) != len(ups) or not stages:
        raise CheckpointError("not a complete SEMat checkpoint: its detail decoder (matting_decoder.*) is incomplete")
    first_in = stem[0][1] if stem else _need(shapes, f"{d}down_blks.0.res_layer.weight")[1]
    down = [_need(shapes, f"{d}down_blks.{i}.res_layer.weight") for i in downs]
    up = [_need(shapes, f"{d}up_blks.{i}.res_layer.weight") for i in ups]
    projection = _need(shapes, f"{d}vit_feat_proj.{projections[0]}.weight")
    if projection[1] != vit_channels:
        raise CheckpointError(
            f"not a consistent SEMat checkpoint: the detail decoder reads {projection[1]}-channel ViT features, the encoder has {vit_channels}"
        )
    return DetailDecoderConfig(
        input_channels=first_in,
        stem_channels=tuple(s[0] for s in stem),
        stem_kernel=stem[0][2] if stem else 0,
        vit_channels=vit_channels,
        vit_feature_count=len(projections),
        projected_vit_channels=projection[0],
        down_channels=tuple(s[0] for s in down),
        down_kernel=down[0][2],
        stages_per_block=len(stages),
        up_channels=tuple(s[0] for s in up),
        up_kernel=up[0][2],
        head_kernel=_need(shapes, f"{d}matting_head.weight")[2],
    )


def read_semat_config(shapes: ShapeMap) -> SematConfig:
    """The ``SematConfig`` of a SEMat (SAM or HQ-SAM) checkpoint's tensor names -> shapes."""
    if any(SAM2_MARKER in k for k in shapes):
        raise CheckpointError(
            "this is SEMat (SAM2), which PromptMatte does not run yet: use SEMat_SAM.pth or SEMat_HQ-SAM.pth"
        )
    sam = read_sam_config(_sam_shapes(shapes), prefix="sam_model.")
    if len(sam.global_attn_indexes) != 4:
        raise CheckpointError(
            f"not a SEMat checkpoint: its ViT has {len(sam.global_attn_indexes)} global-attention blocks, SEMat reads four"
        )
    tokens, dim = _need(shapes, MATTING_TOKEN_KEY)
    matting = MattingDecoderConfig(
        transformer_dim=dim,
        vit_channels=sam.embed_dim,
        matting_token_count=tokens,
        has_hq_token=HQ_TOKEN_KEY in shapes,
    )
    detail = _read_detail(shapes, sam.embed_dim)
    if detail.input_channels != 3 + tokens:
        raise CheckpointError(
            f"not a consistent SEMat checkpoint: the detail decoder takes {detail.input_channels} channels, "
            f"expected the image's 3 and {tokens} matting logits"
        )
    box = _need(shapes, BOX_EMBED_KEY)
    if box[0] != sam.embed_dim or box[2:] != (sam.patch_size, sam.patch_size):
        raise CheckpointError(f"not a consistent SEMat checkpoint: {BOX_EMBED_KEY} has shape {box}")
    return SematConfig(sam=sam, matting=matting, detail=detail, box_embed_channels=box[1])
