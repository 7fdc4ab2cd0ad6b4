"""Segment Anything's architecture, read from the tensor shapes of a checkpoint.

The released files (``sam_vit_b_01ec64.pth``, ``sam_vit_l_0b3195.pth``, ``sam_vit_h_4b8939.pth``)
are flat state dicts under ``image_encoder.``, ``prompt_encoder.`` and ``mask_decoder.``. Every
number in ``SamConfig`` except the two head counts follows from a shape:

- the encoder's token grid from ``pos_embed`` (1, G, G, C) and the patch size from the patch
  projection (C, 3, P, P), so ``image_size = G * P``;
- a block attends globally when its relative-position table covers the whole grid
  (``2 * G - 1`` rows) and within windows of ``W`` tokens when it has ``2 * W - 1`` rows;
- the encoder's heads from the table's width, which is one head's width;
- the two-way transformer's heads cannot be seen in any shape (the attention projections are
  split into heads only at run time): every released SAM uses 8, so that is the default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from ..errors import CheckpointError

# Not visible in any tensor shape; the same in all released SAM checkpoints (build_sam.py).
DECODER_NUM_HEADS = 8
ENCODER_LAYER_NORM_EPS = 1e-6  # the ViT blocks' LayerNorms (build_sam passes eps=1e-6)


@dataclass(frozen=True)
class SamConfig:
    # Image encoder (ViT with windowed attention, ViTDet style).
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    window_size: int = 14
    patch_size: int = 16
    image_size: int = 1024
    out_chans: int = 256
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    use_rel_pos: bool = True
    # Prompt encoder.
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    # Mask decoder and its two-way transformer.
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = DECODER_NUM_HEADS
    attention_downsample_rate: int = 2
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256

    @property
    def grid_size(self) -> int:
        """Tokens per side of the image embedding (64 for every released SAM)."""
        return self.image_size // self.patch_size

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def mlp_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    @property
    def num_mask_tokens(self) -> int:
        return self.num_multimask_outputs + 1

    def block_window_size(self, index: int) -> int:
        """0 for a global-attention block, else the attention window's side in tokens."""
        return 0 if index in self.global_attn_indexes else self.window_size


def _shape(shapes: Mapping[str, tuple], key: str) -> tuple:
    if key not in shapes:
        raise CheckpointError(f"not a Segment Anything checkpoint: it has no {key!r} tensor")
    return tuple(shapes[key])


def _count(shapes: Mapping[str, tuple], pattern: str) -> int:
    """How many consecutive indices 0, 1, ... have keys starting ``{pattern}{i}.`` (ModuleList length)."""
    indices = set()
    regex = re.compile(re.escape(pattern) + r"(\d+)\.")
    for key in shapes:
        match = regex.match(key)
        if match:
            indices.add(int(match.group(1)))
    count = 0
    while count in indices:
        count += 1
    return count


def read_sam_config(shapes: Mapping[str, tuple], prefix: str = "") -> SamConfig:
    """The ``SamConfig`` of the SAM whose tensors are ``{prefix}image_encoder.*`` etc. in ``shapes``.

    ``shapes``: tensor name -> shape (tuples or ``torch.Size``). ``prefix`` lets a family read the
    SAM inside its own checkpoint (e.g. ``"seg_model."``). Raises ``CheckpointError`` naming the
    first tensor that is missing.
    """
    enc, pe, dec = f"{prefix}image_encoder.", f"{prefix}prompt_encoder.", f"{prefix}mask_decoder."

    embed_dim, _, patch_h, patch_w = _shape(shapes, enc + "patch_embed.proj.weight")
    if patch_h != patch_w:
        raise CheckpointError(f"not a Segment Anything checkpoint: non-square patches {patch_h}x{patch_w}")
    _, grid_h, grid_w, _ = _shape(shapes, enc + "pos_embed")
    if grid_h != grid_w:
        raise CheckpointError(f"not a Segment Anything checkpoint: non-square position grid {grid_h}x{grid_w}")
    depth = _count(shapes, enc + "blocks.")
    if depth == 0:
        raise CheckpointError(f"not a Segment Anything checkpoint: it has no {enc}blocks.0.* tensors")

    use_rel_pos = f"{enc}blocks.0.attn.rel_pos_h" in shapes
    if use_rel_pos:
        table_lengths = [_shape(shapes, f"{enc}blocks.{i}.attn.rel_pos_h")[0] for i in range(depth)]
        head_dim = _shape(shapes, f"{enc}blocks.0.attn.rel_pos_h")[1]
        # A table of 2 * grid - 1 rows spans the whole grid: that block attends globally.
        global_attn_indexes = tuple(i for i, n in enumerate(table_lengths) if n == 2 * grid_h - 1)
        windowed = sorted({(n + 1) // 2 for n in table_lengths if n != 2 * grid_h - 1})
        if len(windowed) > 1:
            raise CheckpointError(f"not a Segment Anything checkpoint: blocks use several window sizes {windowed}")
        window_size = windowed[0] if windowed else 14
    else:
        raise CheckpointError(
            f"not a Segment Anything checkpoint: {enc}blocks.0.attn.rel_pos_h is missing "
            "(every released SAM has relative position tables, which also give the head count)"
        )
    num_heads = embed_dim // head_dim
    mlp_hidden = _shape(shapes, f"{enc}blocks.0.mlp.lin1.weight")[0]
    out_chans = _shape(shapes, enc + "neck.0.weight")[0]

    prompt_embed_dim = _shape(shapes, pe + "point_embeddings.0.weight")[1]
    mask_in_chans = _shape(shapes, pe + "mask_downscaling.3.weight")[0]

    transformer_dim = _shape(shapes, dec + "iou_token.weight")[1]
    num_mask_tokens = _shape(shapes, dec + "mask_tokens.weight")[0]
    decoder_depth = _count(shapes, dec + "transformer.layers.")
    decoder_mlp_dim = _shape(shapes, dec + "transformer.layers.0.mlp.lin1.weight")[0]
    internal_dim = _shape(shapes, dec + "transformer.layers.0.cross_attn_token_to_image.q_proj.weight")[0]
    iou_head_depth = _count(shapes, dec + "iou_prediction_head.layers.")
    iou_head_hidden_dim = _shape(shapes, dec + "iou_prediction_head.layers.0.weight")[0]
    if transformer_dim != prompt_embed_dim or out_chans != prompt_embed_dim:
        raise CheckpointError(
            "not a Segment Anything checkpoint: the image embedding, prompt and decoder widths differ "
            f"({out_chans}, {prompt_embed_dim}, {transformer_dim})"
        )

    return SamConfig(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        global_attn_indexes=global_attn_indexes,
        window_size=window_size,
        patch_size=patch_h,
        image_size=grid_h * patch_h,
        out_chans=out_chans,
        mlp_ratio=mlp_hidden / embed_dim,
        qkv_bias=f"{enc}blocks.0.attn.qkv.bias" in shapes,
        use_rel_pos=use_rel_pos,
        prompt_embed_dim=prompt_embed_dim,
        mask_in_chans=mask_in_chans,
        decoder_depth=decoder_depth,
        decoder_mlp_dim=decoder_mlp_dim,
        decoder_num_heads=DECODER_NUM_HEADS,
        attention_downsample_rate=transformer_dim // internal_dim,
        num_multimask_outputs=num_mask_tokens - 1,
        iou_head_depth=iou_head_depth,
        iou_head_hidden_dim=iou_head_hidden_dim,
    )
