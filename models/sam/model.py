"""Segment Anything as one module, built from a checkpoint's tensors.

``build_sam`` reads the architecture from the tensor shapes (``read_sam_config``), builds the
modules on the meta device and assigns the checkpoint's tensors to them, so nothing is
allocated twice and memory-mapped tensors stay lazy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from ..errors import CheckpointError
from .config import SamConfig, read_sam_config
from .image_encoder import SamImageEncoder, encoder_memory_bytes
from .mask_decoder import SamMaskDecoder
from .prompt_encoder import SamPromptEncoder
from .transforms import (
    PIXEL_MEAN,
    PIXEL_STD,
    get_preprocess_shape,
    normalize_and_pad,
    postprocess_masks,
    resize_longest_side,
    to_uint8,
)

SAM_FILE_NAMES = {"vit_b": "sam_vit_b_01ec64.pth", "vit_l": "sam_vit_l_0b3195.pth", "vit_h": "sam_vit_h_4b8939.pth"}

# The released encoders (build_sam.py); everything else is shared by the three.
OFFICIAL_CONFIGS = {
    "vit_b": SamConfig(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": SamConfig(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": SamConfig(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
}

COMPONENTS = ("image_encoder.", "prompt_encoder.", "mask_decoder.")
# Keys that say "this is SAM" without reading anything else.
SIGNATURE_KEYS = (
    "image_encoder.patch_embed.proj.weight",
    "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
    "mask_decoder.iou_token.weight",
)


def looks_like_sam(shapes: Mapping[str, tuple], prefix: str = "") -> bool:
    """True when ``shapes`` holds a SAM's three components (under ``prefix``)."""
    return all(prefix + key in shapes for key in SIGNATURE_KEYS)


def size_name(config: SamConfig) -> str:
    """"vit_b" / "vit_l" / "vit_h" for a released architecture, else "custom"."""
    return next((name for name, official in OFFICIAL_CONFIGS.items() if official == config), "custom")


@dataclass
class SamGuidance:
    """Per prompt: guide (B, 1, 256, 256) and post (B, 1, H, W) masks of 0 / 1 (see ``guidance_masks``),
    the three masks' low-res logits (B, 3, 256, 256), their IoU predictions (B, 3), the index kept (B,)."""

    guide: torch.Tensor
    post: torch.Tensor
    low_res_logits: torch.Tensor
    iou_predictions: torch.Tensor
    best_index: torch.Tensor


class SamModel(nn.Module):
    """Image encoder, prompt encoder and mask decoder, with SAM's pixel statistics.

    ``pixel_mean`` / ``pixel_std`` (3, 1, 1) are buffers outside the state dict, as in the
    authors' ``Sam`` (the released files do not hold them).
    """

    mask_threshold = 0.0

    def __init__(self, config: SamConfig):
        super().__init__()
        self.config = config
        self.image_encoder = SamImageEncoder(config)
        self.prompt_encoder = SamPromptEncoder(config)
        self.mask_decoder = SamMaskDecoder(config)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.mask_decoder.iou_token.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.mask_decoder.iou_token.weight.dtype

    def inference_memory_bytes(self, batch: int, height: int, width: int, prompts_per_image: int = 1) -> int:
        """Working memory of preprocess + encoder + one decoder pass at (height, width), weights excluded.

        The encoder's from ``encoder_memory_bytes``; the input: the uint8 image, its resized
        copy and the float normalised and padded input (x2); the decoder: the upscaled features
        and masks per prompt and the masks at full size.
        """
        c = self.config
        e = torch.finfo(self.dtype).bits // 8
        encoder = encoder_memory_bytes(c, batch, e)
        side = c.image_size
        inputs = batch * (3 * height * width * (1 + 4) + 3 * side * side * (1 + 2 * e))
        upscaled = (4 * c.grid_size) ** 2 * (c.prompt_embed_dim // 8 + c.num_mask_tokens) * e
        decoder = batch * prompts_per_image * (2 * upscaled + side * side * e + 2 * height * width * e)
        return int(encoder + inputs + decoder)

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of an image of (height, width) after the longest-side resize (before padding)."""
        return get_preprocess_shape(height, width, self.config.image_size)

    def preprocess(self, image: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, 3, H, W) RGB in [0, 1] -> ((B, 3, 1024, 1024) encoder input, (h, w) resized size).

        8-bit pixels, PIL bilinear resize of the longest side to 1024, normalised, zero padded:
        the authors' ``set_image`` path exactly.
        """
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"SAM takes an RGB image batch (B, 3, H, W), got shape {tuple(image.shape)}")
        resized = resize_longest_side(to_uint8(image).to(self.device), self.config.image_size)
        padded = normalize_and_pad(resized, self.pixel_mean, self.pixel_std, self.config.image_size, self.dtype)
        return padded, tuple(resized.shape[-2:])

    def preprocess_uint8(self, resized: torch.Tensor) -> torch.Tensor:
        """An already resized uint8 (B, 3, h, w) image -> (B, 3, 1024, 1024) encoder input."""
        return normalize_and_pad(resized.to(self.device), self.pixel_mean, self.pixel_std, self.config.image_size, self.dtype)

    def predict(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        return_details: bool = False,
    ):
        """Prompts in resized-image pixels -> (low-res logits (B, M, 256, 256), iou (B, M)).

        The authors' ``SamPredictor.predict_torch`` before its upscaling (``postprocess_masks``).
        image_embeddings (1 or B, 256, 64, 64); point_coords (B, N, 2) with point_labels (B, N);
        boxes (B, 4); mask_input (B, 1, 256, 256).
        """
        points = (point_coords, point_labels) if point_coords is not None else None
        sparse, dense = self.prompt_encoder(points, boxes, mask_input)
        return self.mask_decoder(
            image_embeddings,
            self.prompt_encoder.get_dense_pe(),
            sparse,
            dense,
            multimask_output=multimask_output,
            return_details=return_details,
        )

    def postprocess_masks(self, masks: torch.Tensor, input_size, original_size) -> torch.Tensor:
        """(B, M, 256, 256) -> (B, M, H, W) logits (see ``transforms.postprocess_masks``)."""
        return postprocess_masks(masks, input_size, original_size, self.config.image_size)

    def guidance_masks(
        self,
        image_embeddings: torch.Tensor,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
        point_coords: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
    ) -> SamGuidance:
        """The masks Matting Anything's M2M module is guided by (its ``forward_m2m_inference``).

        Three masks per prompt (``multimask_output=True``); per prompt the one with the highest
        predicted IoU (first on ties) is kept, as low-res logits and upscaled to the original
        size, each made 0 / 1 by ``logit > 0``. The M2M module then reads ``guide`` with the
        image embedding and the normalised, padded encoder input.
        """
        low_res, iou = self.predict(image_embeddings, point_coords, point_labels, boxes, multimask_output=True)
        best = iou.argmax(dim=1)
        rows = torch.arange(low_res.shape[0], device=low_res.device)
        best_low_res = low_res[rows, best][:, None]
        # The authors upscale all three maps and then pick one; interpolation works map by map,
        # so upscaling only the kept one gives the same values.
        upscaled = self.postprocess_masks(best_low_res, input_size, original_size)
        threshold = self.mask_threshold
        return SamGuidance(
            guide=(best_low_res > threshold).to(low_res.dtype),
            post=(upscaled > threshold).to(low_res.dtype),
            low_res_logits=low_res,
            iou_predictions=iou,
            best_index=best,
        )


def build_sam(
    tensors: Mapping[str, torch.Tensor],
    dtype: torch.dtype | None = None,
    prefix: str = "",
    strict: bool = True,
) -> SamModel:
    """A ``SamModel`` holding ``tensors`` (official key layout, optionally under ``prefix``).

    Keys outside ``{prefix}image_encoder./prompt_encoder./mask_decoder.`` are ignored (a family's
    own checkpoint may hold SAM beside its other modules). Missing or misshapen tensors raise
    ``CheckpointError`` naming the first few; with ``strict`` so do unknown tensors inside the
    three components (a variant such as HQ-SAM, which this module does not implement).
    ``dtype`` None keeps the checkpoint's floating dtype.
    """
    shapes = {key: tuple(value.shape) for key, value in tensors.items()}
    if not looks_like_sam(shapes, prefix):
        missing = [prefix + key for key in SIGNATURE_KEYS if prefix + key not in shapes]
        raise CheckpointError(f"not a Segment Anything checkpoint: it has no {', '.join(missing)}")
    config = read_sam_config(shapes, prefix)
    with torch.device("meta"):
        model = SamModel(config)
    expected = model.state_dict()
    state = {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix) and key[len(prefix) :].startswith(COMPONENTS)}
    missing = [key for key in expected if key not in state]
    if missing:
        raise CheckpointError(
            f"not a Segment Anything checkpoint: {len(missing)} tensors are missing, first {', '.join(prefix + k for k in missing[:5])}"
        )
    misshapen = [f"{prefix}{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items() if state[k].shape != v.shape]
    if misshapen:
        raise CheckpointError(f"not a Segment Anything checkpoint: misshapen tensors: {'; '.join(misshapen[:5])}")
    unexpected = [key for key in state if key not in expected]
    if strict and unexpected:
        raise CheckpointError(
            f"not a plain Segment Anything checkpoint: {len(unexpected)} unknown tensors, first "
            f"{', '.join(prefix + k for k in unexpected[:5])}"
        )
    target = dtype if dtype is not None else state["mask_decoder.iou_token.weight"].dtype
    converted = {k: (v.to(target) if v.is_floating_point() and v.dtype != target else v) for k, v in state.items() if k in expected}
    model.load_state_dict(converted, strict=True, assign=True)
    # The pixel statistics are not in the file: make them real tensors on the weights' device.
    device = model.device
    model.pixel_mean = torch.tensor(PIXEL_MEAN, device=device).view(-1, 1, 1)
    model.pixel_std = torch.tensor(PIXEL_STD, device=device).view(-1, 1, 1)
    return model.eval()
