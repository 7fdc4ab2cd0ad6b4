"""SEMat (Xia et al., ICLR 2025) as one module: an RGB image and a box in, alpha out.

The authors' evaluation path (``SamHqMatte.forward`` on their test transforms), per image:

1. the RGB image in [0, 1] is resized so its long side is 1024 (``int(side * scale + 0.5)``;
   torch bilinear, align_corners False, no antialias: their ``ResziePad``), zero padded at the
   bottom and right to 1024², then normalised with ImageNet's mean and std (so the padding is
   -mean / std, unlike SAM's own preprocessing, which pads after normalising);
2. the box, in 1024-frame pixels (x1, y1, x2, y2 with x2, y2 the last column and row), is drawn as
   a 0/1 mask over ``[int(y1):int(y2), int(x1):int(x2)]``; image + mask go through a 4-channel
   16x16 patch embedding whose tokens are added to the ViT's patch tokens before its absolute
   positions;
3. SAM's ViT (LoRA merged at load) gives the image embedding and the four global-attention
   blocks' features; SAM's prompt encoder embeds the same box; the matting mask decoder gives
   three matting logit maps at 256², upscaled bilinearly to 1024²;
4. the detail decoder turns the image, the logits / 6.5 and the four ViT features into a sigmoid
   alpha at 1024², of which the resized image's area is kept.

The authors stop at that crop (they evaluate at the 1024 frame). We resize it back to the input
size, bilinear, align_corners False, no antialias (the interpolation their resize uses).

Boxes from PromptMatte's coordinates: the box's pixels (x2, y2 end-exclusive, so the last column
and row are x2 - 1, y2 - 1; a mask's box already holds its last indices) are scaled into the frame
as the authors' demo does: ``int(v * scale + 0.5)``, clipped to [0, 1023]. "auto" is the whole
image's box (SEMat's automatic matting: a box over the whole picture).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..sam import SamImageEncoder, SamMaskDecoder, SamPromptEncoder
from .config import SematConfig
from .detail_decoder import DetailDecoder
from .matting_decoder import MattingMaskDecoder

PROMPT_KINDS = ("box", "mask", "auto")
FRAME = 1024  # the padded square every image is matted in (SAM's input size)
# SamHqMatte's pixel_mean / pixel_std (configs/semantic_enhanced_matting/model.py), in [0, 1] units.
PIXEL_MEAN = (123.675 / 255.0, 116.280 / 255.0, 103.530 / 255.0)
PIXEL_STD = (58.395 / 255.0, 57.120 / 255.0, 57.375 / 255.0)


def frame_size(height: int, width: int) -> tuple[int, int]:
    """(h, w) of an image of (height, width) resized into the frame: long side 1024, sides rounded half up."""
    scale = FRAME * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def frame_box(box_last: tuple[float, float, float, float], height: int, width: int) -> tuple[float, float, float, float]:
    """A box in input pixels (x1, y1, x2, y2 with x2, y2 the last column / row) -> frame pixels.

    The authors' demo rule: each corner ``int(v * scale + 0.5)``, then clipped to [0, 1023].
    """
    scale = FRAME * 1.0 / max(height, width)
    return tuple(float(min(max(int(v * scale + 0.5), 0), FRAME - 1)) for v in box_last)


def input_box(coords: torch.Tensor, kind: str, height: int, width: int) -> tuple[int, int, int, int]:
    """One image's PromptMatte coordinates -> its box in input pixels with last indices."""
    if kind == "auto":
        return (0, 0, width - 1, height - 1)
    x1, y1, x2, y2 = (float(v) for v in coords[:4])
    # Normalised pixel indices: round back to the integers they came from.
    x1, y1, x2, y2 = round(x1 * width), round(y1 * height), round(x2 * width), round(y2 * height)
    if kind == "box":  # end-exclusive -> last index
        x2, y2 = x2 - 1, y2 - 1
    return (x1, y1, x2, y2)


class SematModel(nn.Module):
    """(image (B, 3, H, W) RGB [0, 1], box per image) -> alpha (B, 1, H, W) in [0, 1]."""

    family = "semat"
    prompt_kinds = PROMPT_KINDS
    works_at_input_size = True

    def __init__(self, config: SematConfig):
        super().__init__()
        self.config = config
        sam = config.sam
        self.encoder = SamImageEncoder(sam)
        self.box_embed = nn.Conv2d(config.box_embed_channels, sam.embed_dim, sam.patch_size, sam.patch_size)
        self.prompt_encoder = SamPromptEncoder(sam)
        self.mask_decoder = MattingMaskDecoder(config.matting, SamMaskDecoder(sam))
        self.detail_decoder = DetailDecoder(config.detail)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def variant(self) -> str:
        return self.config.variant

    @property
    def device(self) -> torch.device:
        return self.box_embed.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.box_embed.weight.dtype

    # ------------------------------------------------------------------ the authors' frame

    def preprocess(self, image: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, 3, H, W) in [0, 1] -> ((B, 3, 1024, 1024) normalised frame, (h, w) of the resized image)."""
        height, width = image.shape[-2:]
        size = frame_size(height, width)
        resized = F.interpolate(image.to(self.device, torch.float32), size=size, mode="bilinear", align_corners=False)
        padded = F.pad(resized, (0, FRAME - size[1], 0, FRAME - size[0]))
        return ((padded - self.pixel_mean) / self.pixel_std).to(self.dtype), size

    def box_mask(self, boxes: torch.Tensor) -> torch.Tensor:
        """(B, 4) frame boxes -> (B, 1, 1024, 1024) 0/1 mask over rows int(y1):int(y2), columns int(x1):int(x2)."""
        rows = torch.arange(FRAME, device=boxes.device)
        b = boxes.to(torch.int64)  # int() of non-negative values: truncation
        inside_y = (rows[None, :] >= b[:, 1:2]) & (rows[None, :] < b[:, 3:4])
        inside_x = (rows[None, :] >= b[:, 0:1]) & (rows[None, :] < b[:, 2:3])
        return (inside_y[:, :, None] & inside_x[:, None, :]).unsqueeze(1).to(self.dtype)

    def encode(self, frame: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Normalised frame (B, 3, 1024, 1024) + frame boxes (B, 4) -> (embedding (B, 256, 64, 64),
        4 x global-block features (B, 64, 64, C))."""
        encoder = self.encoder
        box_tokens = self.box_embed(torch.cat((frame, self.box_mask(boxes)), dim=1)).permute(0, 2, 3, 1)
        x = encoder.patch_embed(frame) + box_tokens
        x = x + encoder.pos_embed
        features = []
        for block in encoder.blocks:
            x = block(x)
            if block.is_global:
                features.append(x)
        return encoder.neck(x.permute(0, 3, 1, 2)), features

    def matting_logits(self, embedding: torch.Tensor, features: list[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """-> (B, T, 256, 256) matting logits for frame boxes (B, 4)."""
        sparse, dense = self.prompt_encoder(None, boxes.to(self.dtype), None)
        return self.mask_decoder(embedding, self.prompt_encoder.get_dense_pe(), dense, sparse, features[0])

    def matte_frame(self, frame: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha (B, 1, 1024, 1024), matting logits (B, T, 1024, 1024)) for a normalised frame and frame boxes."""
        embedding, features = self.encode(frame, boxes)
        logits = self.matting_logits(embedding, features, boxes)
        logits = F.interpolate(logits, size=frame.shape[-2:], mode="bilinear", align_corners=False)
        return self.detail_decoder(frame, logits, features), logits

    # ------------------------------------------------------------------ PromptMatte's call

    def _check(self, image: torch.Tensor, coords: torch.Tensor, kind: str) -> None:
        if kind not in PROMPT_KINDS:
            raise ValueError(
                f"SEMat takes a box (prompt kinds {', '.join(PROMPT_KINDS)}: a mask gives its bounding box, "
                f"'auto' the whole image), not {kind!r}: draw a box around the subject"
            )
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"SEMat takes an RGB image batch (B, 3, H, W) in [0, 1], got shape {tuple(image.shape)}")
        if kind != "auto" and (coords is None or coords.dim() != 2 or coords.shape[0] != image.shape[0] or coords.shape[1] < 4):
            shape = None if coords is None else tuple(coords.shape)
            raise ValueError(f"SEMat needs one box per image as coords (B, 4) [x1/W, y1/H, x2/W, y2/H], got {shape}")

    def frame_boxes(self, coords: torch.Tensor | None, kind: str, height: int, width: int, batch: int) -> torch.Tensor:
        """(B, 4) float32 frame boxes for PromptMatte's coordinates."""
        boxes = [frame_box(input_box(None if coords is None else coords[i], kind, height, width), height, width) for i in range(batch)]
        return torch.tensor(boxes, dtype=torch.float32, device=self.device)

    def forward(self, image, prompt_map=None, coords=None, kind="box", transparent=None, caption=None) -> torch.Tensor:
        """See models/family.py. Images are matted one at a time (the working memory of one 1024² pass)."""
        self._check(image, coords, kind)
        batch, _, height, width = image.shape
        with torch.inference_mode():
            boxes = self.frame_boxes(coords, kind, height, width, batch)
            alphas = []
            for i in range(batch):
                frame, (h, w) = self.preprocess(image[i : i + 1])
                alpha, _ = self.matte_frame(frame, boxes[i : i + 1])
                alpha = alpha[:, :, :h, :w].float()
                alphas.append(F.interpolate(alpha, size=(height, width), mode="bilinear", align_corners=False))
            return torch.cat(alphas).clamp_(0, 1).to(image.device)

    def detail_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an input of (height, width) is resolved at: the 1024 frame (longer side at most
        1024), as ``preprocess`` resizes (the alpha is resized back)."""
        return (height, width) if max(height, width) <= FRAME else frame_size(height, width)

    def inference_memory_bytes(self, batch: int, height: int, width: int) -> int:
        """Working memory of ``forward`` at (height, width), weights excluded (images go one at a time).

        Reasoned from the largest tensors alive at once (e bytes per element, S = 1024² pixels,
        T = one image's ViT tokens, 64² x C x e):
        - always: the normalised frame and the upscaled matting logits (3 + T' channels of S e),
          the four global-block features (4 T);
        - encoder: the box-mask input (4 S e); in a global block the residual, the norm, qkv and
          the attention output (6 T) plus per 1024-row query chunk the relative-position bias,
          scores and softmax (3 x heads x 1024 x 4096 x e); in the MLP the 4C hidden layer and
          its GELU (8 T);
        - detail decoder, the larger of: a stem layer's input, its row-padded copy and its output
          (plus one band's unfolded input, k² x 64 rows x 1024, and its outputs); the last up
          block's half-resolution input, that input upsampled for the shortcut and three
          outputs (stage, shortcut, convolution workspace);
        - the float input and output at (height, width) for the whole batch.
        """
        from .detail_decoder import BAND_ROWS

        c = self.config
        e = torch.finfo(self.dtype).bits // 8
        s = FRAME * FRAME
        grid = (FRAME // c.sam.patch_size) ** 2
        tokens = grid * c.sam.embed_dim * e
        attention = 6 * tokens + 3 * c.sam.num_heads * min(1024, grid) * grid * e
        mlp = (2 + 2 * c.sam.mlp_ratio) * tokens
        encoder = 4 * s * e + max(attention, mlp)
        d = c.detail
        widths = (d.input_channels,) + d.stem_channels
        stem = max((2 * a + b for a, b in zip(widths[:-1], widths[1:])), default=0) * s * e
        if d.stem_channels:
            stem += (d.stem_kernel**2 + 2 * max(d.stem_channels)) * BAND_ROWS * FRAME * e
        last_in = d.up_channels[-2] if len(d.up_channels) > 1 else d.down_channels[-1]
        up = (last_in / 4 + last_in + 3 * d.up_channels[-1]) * s * e
        kept = (3 + c.matting.matting_token_count) * s * e + 4 * tokens
        io = batch * height * width * (3 + 2) * 4
        return int(kept + max(encoder, stem, up) + io)
