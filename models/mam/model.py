"""Matting Anything (Li et al., 2023): SAM's mask and features refined into an alpha matte.

One forward, as the authors' ``sam_m2m.forward_inference`` and their demo's post-processing,
image by image:

1. SAM's preprocessing: 8-bit pixels, PIL bilinear resize of the longest side to 1024,
   normalisation in 0-255 units, zero padding to 1024² (``models/sam/transforms.py``);
2. SAM's image encoder -> embedding (1, 256, 64, 64); the image's prompt (all clicks as one
   positive multi-point prompt, or a box) -> three masks, the one with the highest predicted IoU
   kept, binarised at 256² (M2M's guide) and at the input size (the "post" mask);
3. the M2M module -> alphas at output strides 8, 4, 1 (1024²), cropped to the resized image and
   resized bilinearly to the input size;
4. ``fusion.fuse_alphas``: SAM's mask outside its bounding box, OS8 inside, OS4 then OS1 in the
   uncertain bands.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..encoding_cache import EncodingCache
from ..sam import SamModel
from ..sam.transforms import get_preprocess_shape, scale_boxes, scale_coords
from .fusion import fuse_alphas
from .network import MaskToMatte

PROMPT_KINDS = ("point", "box", "mask")
MAX_CLICKS = 10


def click_count(coords: torch.Tensor) -> int:
    """Clicks in one (20,) row: the first always counts; trailing (0, 0) pairs are padding."""
    nonzero = (coords.reshape(-1, 2) != 0).any(dim=1).nonzero()
    return max(1, int(nonzero.max()) + 1) if nonzero.numel() else 1


class MattingAnything(nn.Module):
    """SAM (``sam``, any released size) + the Mask-to-Matte module (``m2m``); the family's forward."""

    family = "mam"
    prompt_kinds = PROMPT_KINDS
    works_at_input_size = True

    def __init__(self, sam: SamModel, m2m: MaskToMatte, sam_size: str = "vit_b"):
        super().__init__()
        self.sam = sam
        self.m2m = m2m
        self.sam_size = sam_size  # "vit_b" / "vit_l" / "vit_h" / "custom": the SAM file paired with M2M
        # SAM's image embedding does not depend on the prompt: a new click on the same image reuses
        # it (keyed by the exact bytes of the encoder's input). Stale once weights, device or dtype change.
        self.embedding_cache = EncodingCache()
        self.register_load_state_dict_post_hook(lambda module, keys: module.embedding_cache.clear())

    def _apply(self, fn, recurse=True):
        self.embedding_cache.clear()  # new device or dtype: cached embeddings are stale
        return super()._apply(fn, recurse)

    @property
    def device(self) -> torch.device:
        return self.sam.device

    @property
    def dtype(self) -> torch.dtype:
        return self.sam.dtype

    def _check(self, image, prompt_map, coords, kind) -> None:
        if kind not in PROMPT_KINDS:
            raise ValueError(
                f"Matting Anything takes a point, box or mask prompt, not {kind!r} "
                "(a trimap or no prompt needs another family)"
            )
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be an RGB batch (B, 3, H, W), got shape {tuple(image.shape)}")
        width = 2 * MAX_CLICKS if kind == "point" else 4
        if coords.dim() != 2 or coords.shape != (image.shape[0], width):
            raise ValueError(
                f"coords for a {kind} prompt must be (B, {width}) for B = {image.shape[0]} images, "
                f"got {tuple(coords.shape)}"
            )
        if kind != "point" and not bool(((coords[:, 2:] >= coords[:, :2]).all())):
            raise ValueError("a box or mask prompt's coords must be [x1/W, y1/H, x2/W, y2/H] with x2 >= x1 and y2 >= y1")

    def _prompt(self, coords: torch.Tensor, kind: str, size: tuple[int, int]) -> dict:
        """One image's normalised coords -> SAM's prompt in resized-image pixels (batch of one).

        A mask prompt is its bounding box (SAM's mask input is not what MAM was trained with).
        """
        height, width = size
        if kind == "point":
            count = click_count(coords)
            pixels = coords[: 2 * count].double().reshape(1, count, 2) * torch.tensor([width, height], dtype=torch.float64, device=coords.device)
            points = scale_coords(pixels, size, self.sam.config.image_size)
            return {"point_coords": points, "point_labels": torch.ones(1, count, device=coords.device)}
        pixels = coords.double().reshape(1, 4) * torch.tensor([width, height] * 2, dtype=torch.float64, device=coords.device)
        return {"boxes": scale_boxes(pixels, size, self.sam.config.image_size)}

    def forward(self, image, prompt_map, coords, kind, transparent=None, caption=None):
        """image (B, 3, H, W) RGB in [0, 1]; coords (B, 20) clicks for "point", else (B, 4) a box
        ([x1/W, y1/H, x2/W, y2/H]; a mask's bounding box for "mask") -> alpha (B, 1, H, W) in [0, 1].

        ``prompt_map``, ``transparent`` and ``caption`` are not used (the mask's box is in coords).
        Images go through one at a time: every step works image by image (batch norms on running
        statistics), so a batch gives the same mattes with one image's working memory.
        """
        self._check(image, prompt_map, coords, kind)
        with torch.inference_mode():
            coords = coords.to(self.device)
            alphas = [self._matte(image[n : n + 1], coords[n], kind) for n in range(image.shape[0])]
            return torch.cat(alphas).to(image.device)

    def _matte(self, image: torch.Tensor, coords: torch.Tensor, kind: str) -> torch.Tensor:
        """One image (1, 3, H, W) and its prompt row -> alpha (1, 1, H, W) float32."""
        height, width = image.shape[-2:]
        encoder_input, resized = self.sam.preprocess(image)
        embedding = self.embedding_cache.encode(encoder_input, self.sam.image_encoder)
        guidance = self.sam.guidance_masks(embedding, resized, (height, width), **self._prompt(coords, kind, (height, width)))
        alphas = self.m2m(embedding, encoder_input, guidance.guide.to(self.m2m_dtype))
        del embedding, encoder_input
        # The padded square's alphas: crop the resized image, back to the input size.
        at_input = {
            name: F.interpolate(a[..., : resized[0], : resized[1]].float(), (height, width), mode="bilinear", align_corners=False)
            for name, a in alphas.items()
        }
        del alphas
        return fuse_alphas(guidance.post.float(), at_input["os8"], at_input["os4"], at_input["os1"])

    def detail_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an input of (height, width) is resolved at: SAM's frame, the longer side at most
        its image size (1024), as its preprocessing resizes (the alpha is resized back)."""
        if max(height, width) <= self.sam.config.image_size:
            return (height, width)
        return get_preprocess_shape(height, width, self.sam.config.image_size)

    @property
    def m2m_dtype(self) -> torch.dtype:
        return self.m2m.bn1.weight.dtype

    def inference_memory_bytes(self, batch: int, height: int, width: int) -> int:
        """Working memory of one forward at (height, width), weights excluded (a reasoned bound).

        Images are matted one at a time, so the batch only adds its alphas (and the uint8 copy
        SAM's resize makes). For one image, the largest of three passes that do not overlap:
        - SAM (preprocessing, encoder, one decoder pass): ``SamModel.inference_memory_bytes``;
        - M2M at 1024², beside the encoder input, the embedding and SAM's mask: three
          full-resolution maps of its 32 channels alive at once (the last features, kept for
          the OS1 head, and two of that head's hidden maps in turn) and the three alphas;
        - the fusion at the input size: the three alphas there and some seven float maps.
        """
        element = torch.finfo(self.dtype).bits // 8
        sam = self.sam.config
        pixels = sam.image_size**2
        kept = (3 * pixels + sam.out_chans * sam.grid_size**2) * element + height * width * 4
        m2m_width = max(self.m2m.config.full_resolution_channels, self.m2m.config.head_channels)
        m2m = kept + 3 * m2m_width * pixels * element + 3 * pixels * 4
        fusion = 3 * pixels * 4 + 10 * height * width * 4
        per_batch = batch * height * width * (4 + 3)  # the alphas, the uint8 image
        return int(max(self.sam.inference_memory_bytes(1, height, width), m2m, fusion) + per_batch)
