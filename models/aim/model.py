"""AIM as one module: image in, alpha out, no prompt (the authors' Hybrid test strategy)."""

from __future__ import annotations

import torch
from torch import nn

from .backbone import MaxPoolResNet34
from .config import AIMConfig
from .hybrid import hybrid_sizes, working_size
from .matting_decoder import MattingDecoder
from .resize import cv2_resize_float, cv2_resize_uint8, skimage_resize
from .semantic_decoder import SemanticDecoder

PROMPT_KINDS = ("auto",)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Trimap values of the 3-class head's argmax (background, unknown, foreground).
TRIMAP_VALUES = (0, 128, 255)


class AIMModel(nn.Module):
    """Deep Automatic Image Matting (Li, Zhang, Tao, IJCAI 2021): the salient foreground's alpha.

    Images of a batch run one at a time, as in the authors' test script (each has its own
    trimap from the 1/4-scale run).
    """

    family = "aim"
    prompt_kinds = PROMPT_KINDS
    works_at_input_size = True

    def __init__(self, config: AIMConfig):
        super().__init__()
        self.config = config
        self.backbone = MaxPoolResNet34(config.blocks)
        self.semantic_decoder = SemanticDecoder()
        self.matting_decoder = MattingDecoder()

    @property
    def device(self) -> torch.device:
        return self.backbone.conv1.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.backbone.conv1.weight.dtype

    def _network_input(self, image_uint8: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(1, 3, H, W) uint8 -> (1, 3, h, w) normalised network input, as ``inference_once`` makes it.

        scikit-image's resize (float64 in [0, 1]) times 255, cast to float32, divided by 255,
        then ImageNet mean and std, in that order.
        """
        scaled = (skimage_resize(image_uint8, *size) * 255.0).float()
        scaled = scaled / 255.0
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
        scaled = (scaled - mean) / std
        return scaled.to(self.device, self.dtype)

    def semantic_trimap(self, network_input: torch.Tensor) -> torch.Tensor:
        """(1, 3, h, w) -> (1, h, w) uint8 trimap 0 / 128 / 255 from the 3-class head."""
        features = self.backbone(network_input)
        classes, _ = self.semantic_decoder(features.layer4, classes=True)
        index = classes.float().argmax(dim=1)
        values = torch.tensor(TRIMAP_VALUES, dtype=torch.uint8, device=index.device)
        return values[index]

    def detail_alpha(self, network_input: torch.Tensor) -> torch.Tensor:
        """(1, 3, h, w) -> (1, 1, h, w) float32 alpha of the matting decoder."""
        features = self.backbone(network_input)
        _, gate = self.semantic_decoder(features.layer4, classes=False)
        return self.matting_decoder(features, gate).float()

    def matte_one(self, image_uint8: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) uint8 RGB (on the CPU) -> (1, 1, H, W) float64 alpha in [0, 1]."""
        height, width = image_uint8.shape[-2:]
        sizes = hybrid_sizes(height, width)
        working = image_uint8 if sizes.working == (height, width) else cv2_resize_uint8(image_uint8, *sizes.working)
        trimap = self.semantic_trimap(self._network_input(working, sizes.semantic)).cpu()
        trimap = skimage_resize(trimap, *sizes.working) * 255.0
        detail = self.detail_alpha(self._network_input(working, sizes.detail)).cpu()
        detail = skimage_resize(detail[:, 0], *sizes.working)
        # Where the upsampled trimap is exactly background or foreground it is the answer.
        decided = (trimap == 0) | (trimap == 255)
        alpha = torch.where(decided, trimap / 255, detail)
        if sizes.working != (height, width):
            # The authors resize the alpha back on the 0-255 scale (then cast it to uint8 for their
            # PNG, which an alpha output does not need).
            alpha = cv2_resize_float(alpha * 255.0, height, width) / 255.0
        return alpha[:, None]

    def _check(self, image: torch.Tensor, kind: str) -> None:
        if kind not in PROMPT_KINDS:
            raise ValueError(
                f"AIM is automatic and takes no prompt (got {kind!r}): disconnect the prompt input. "
                f"For a {kind} prompt use a family that takes one: {_families_taking(kind)}"
            )
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (batch, 3, height, width) RGB in [0, 1], got shape {tuple(image.shape)}")
        hybrid_sizes(*image.shape[-2:])  # the 128 px minimum, before any work

    def forward(self, image, prompt_map=None, coords=None, kind="auto", transparent=None, caption=None) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> alpha (B, 1, H, W) float32 in [0, 1] on ``image``'s device.

        ``prompt_map``, ``coords``, ``transparent`` and ``caption`` are not used. The image is
        taken as 8-bit (``round(255 * x)``), as the authors read it from a file.
        """
        self._check(image, kind)
        with torch.inference_mode():
            source_device = image.device
            image_uint8 = torch.round(image.detach().float().clamp(0, 1) * 255).to(torch.uint8).cpu()
            alphas = [self.matte_one(image_uint8[index : index + 1]) for index in range(image.shape[0])]
            return torch.cat(alphas).float().to(source_device)

    def detail_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an input of (height, width) is resolved at: the authors' 1080 rule (the shorter
        side at most 1080; the alpha is resized back)."""
        return working_size(height, width)

    def inference_memory_bytes(self, batch: int, height: int, width: int) -> int:
        """Working memory of one forward at (height, width), weights excluded; see ``_per_image_bytes``."""
        element = torch.finfo(self.dtype).bits // 8
        # Per batch: the float input, its uint8 copy and the float32 result.
        per_batch = batch * height * width * (3 * 4 + 3 + 4)
        return int(per_batch + BEYOND_TENSORS * _per_image_bytes(height, width, element))


def _families_taking(kind: str) -> str:
    """The registered families that accept ``kind``, with every prompt they take (for the error)."""
    from ..registry import families  # noqa: PLC0415  (the registry imports the families)

    taking = [family for family in families() if kind in family.prompt_kinds]
    return "; ".join(f"{family.title} ({', '.join(family.prompt_kinds)})" for family in taking) or "none is registered"


# What the process holds at the peak beyond the tensors counted below: the convolution library's
# buffers and the freed blocks the allocator keeps. Peak RSS rise over the live memory before a pass
# (tests/peak_memory.py) was 1.3-2.0x the tensors' peak from 256x256 to 2048x1536 on this CPU;
# 1.5 puts the estimate within about 0.8-1.5x of it.
BEYOND_TENSORS = 1.5


def _per_image_bytes(height: int, width: int, element: int) -> float:
    """Tensors' peak of ``matte_one`` (images run one at a time): at 512x512 torch.profiler's count
    of live tensor bytes peaks at 97.5 MB, and this gives 97 MB.

    The peak is in the 1/2-scale run's matting decoder at full network resolution (n pixels):
    the stem's 64 channels, the 128-channel concatenation and a convolution's and its
    BatchNorm's 64-channel outputs (320 channels), plus the first max-pool's int64 indices
    (64 channels at n / 4, two elements each) and smaller maps (~8 channels): ~360 channels.
    Beside it the upsampled trimap (float64 at the working size) is alive. The fusion after it
    holds about five float64 maps at the working size, and the 1080 rule adds the resized-back
    alpha's float64 maps at the input size.
    """
    sizes = hybrid_sizes(height, width)
    network_pixels = sizes.detail[0] * sizes.detail[1]
    working_pixels = sizes.working[0] * sizes.working[1]
    network_run = element * network_pixels * 360 + 8 * working_pixels
    fusion = 8 * working_pixels * 5
    resized_back = 8 * height * width * 3 if sizes.working != (height, width) else 0
    return max(network_run, fusion) + resized_back
