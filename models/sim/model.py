"""SIM as one module: semantic trimap from the classifier, then the matting network."""

from __future__ import annotations

import torch
from torch import nn

from .classifier import SIMClassifier
from .config import SIMClassifierConfig, SIMMattingConfig
from .decoder import SIMDecoder
from .encoder import SIMEncoder
from .inputs import (
    BACKGROUND,
    FOREGROUND,
    UNKNOWN,
    click_maps,
    normalise,
    pad_bottom_right,
    padded_size,
    trimap_in_authors_units,
    trimap_planes,
)
from .semantic import semantic_trimap

PROMPT_KINDS = ("trimap",)
# Longest side SIM works at on the detail path: ~3.4 GB of working memory at 1536x1024, so a
# 6000x4000 photo stays within 8 GB with its image, weights and the guided upsampling.
DETAIL_MAX_SIDE = 1536


class SIMModel(nn.Module):
    """Semantic Image Matting: image + trimap -> alpha, with the semantic classes on the side.

    Each image of a batch runs on its own, as in the authors' test script (their semantic map
    is normalised over everything it is given). After a forward, ``last_semantic_classes``
    holds (B, H, W) int64: the most active of ``CLASS_NAMES`` at each unknown pixel, -1 elsewhere.
    """

    family = "sim"
    prompt_kinds = PROMPT_KINDS
    works_at_input_size = True

    def __init__(self, config: SIMMattingConfig, classifier_config: SIMClassifierConfig):
        super().__init__()
        self.config = config
        self.classifier_config = classifier_config
        self.encoder = SIMEncoder(config)
        self.decoder = SIMDecoder(config)
        self.classifier = SIMClassifier(classifier_config)
        self.last_semantic_classes: torch.Tensor | None = None
        # Set to keep each forward's whole semantic trimap in ``last_semantic_maps`` (a list of
        # (1, 20, H, W), None for a trimap without unknown pixels): 80 MB per megapixel.
        self.keep_semantic_maps = False
        self.last_semantic_maps: list | None = None

    @property
    def device(self) -> torch.device:
        return self.encoder.conv1.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.conv1.weight.dtype

    def _check(self, image: torch.Tensor, prompt_map: torch.Tensor, kind: str) -> None:
        if kind not in PROMPT_KINDS:
            raise ValueError(
                f"SIM takes a trimap prompt, not {kind!r}: make one with the 'Matte Prompt: Trimap' node "
                "(from a trimap, or from a mask with its erode/dilate widths)"
            )
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (batch, 3, height, width) RGB in [0, 1], got shape {tuple(image.shape)}")
        if prompt_map.dim() != 4 or prompt_map.shape[1] != 1 or prompt_map.shape[0] != image.shape[0] or prompt_map.shape[-2:] != image.shape[-2:]:
            raise ValueError(
                f"the trimap must be (batch, 1, height, width) matching the image {tuple(image.shape)}, "
                f"got {tuple(prompt_map.shape)}"
            )

    def matte_one(self, image: torch.Tensor, trimap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(1, 3, H, W) RGB in [0, 1] + (1, 1, H, W) trimap 0 / 128 / 255 -> alpha (1, 1, H, W),
        classes (1, H, W) and the semantic trimap (1, 20, H, W) (None without unknown pixels)."""
        height, width = image.shape[-2:]
        unknown = trimap == UNKNOWN
        if not bool(unknown.any()):  # nothing to estimate (the authors' output would be the trimap too)
            no_classes = torch.full((1, height, width), -1, dtype=torch.long, device=image.device)
            return (trimap / 255.0).to(image.dtype), no_classes, None
        image = pad_bottom_right(image)
        trimap = pad_bottom_right(trimap)
        image_normalised = normalise(image)
        planes = trimap_planes(trimap).to(image.dtype)
        clicks = click_maps(planes).to(image.dtype)
        semantic = semantic_trimap(self.classifier, image_normalised, trimap)
        features = self.encoder(torch.cat([image_normalised, clicks, planes], dim=1), semantic)
        del clicks
        alpha = self.decoder(features, image_normalised, image, planes)
        del features
        alpha = torch.where(trimap == BACKGROUND, 0.0, torch.where(trimap == FOREGROUND, 1.0, alpha))
        semantic = semantic[..., :height, :width]
        classes = torch.where(unknown, semantic.argmax(dim=1, keepdim=True), -1)[:, 0]
        return alpha[..., :height, :width], classes, semantic

    def forward(self, image, prompt_map, coords=None, kind="trimap", transparent=None, caption=None) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] + (B, 1, H, W) trimap 0 / 0.5 / 1 -> alpha (B, 1, H, W) in [0, 1].

        ``coords``, ``transparent`` and ``caption`` are not used by SIM.
        """
        self._check(image, prompt_map, kind)
        with torch.inference_mode():
            source_device = image.device
            image = image.to(self.device, self.dtype)
            trimap = trimap_in_authors_units(prompt_map.to(self.device)).to(self.dtype)
            alphas, classes, maps = [], [], []
            for index in range(image.shape[0]):
                alpha, semantic_classes, semantic = self.matte_one(image[index : index + 1], trimap[index : index + 1])
                alphas.append(alpha)
                classes.append(semantic_classes)
                maps.append(semantic if self.keep_semantic_maps else None)
                del semantic
            self.last_semantic_classes = torch.cat(classes).to(source_device)
            self.last_semantic_maps = maps if self.keep_semantic_maps else None
            return torch.cat(alphas).float().to(source_device)

    def detail_size(self, height: int, width: int) -> tuple[int, int]:
        """SIM works at the input's own size, with memory that grows with it (about 2.3 GB of working
        memory at 1024², 53 GB at 6000x4000): above ``DETAIL_MAX_SIDE`` on the longer side it works
        at that size when the pipeline's detail path brings the alpha back (guided or refined)."""
        if max(height, width) <= DETAIL_MAX_SIDE:
            return (height, width)
        scale = DETAIL_MAX_SIDE / max(height, width)
        return (max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5)))

    def inference_memory_bytes(self, batch: int, height: int, width: int) -> int:
        """Working memory of one forward at (height, width), weights excluded.

        Images run one at a time, so the batch only adds its inputs and outputs; the rest is one
        image's peak (``per_image_bytes``) on the padded size.
        """
        element = torch.finfo(self.dtype).bits // 8
        per_batch = batch * height * width * (3 + 1 + 1 + 2) * 4  # inputs, alpha, classes (int64 = 2 floats)
        return int(per_batch + per_image_bytes(self.config, padded_size(height), padded_size(width), element))


def per_image_bytes(config: SIMMattingConfig, height: int, width: int, element: int) -> float:
    """Peak working memory of ``matte_one`` on a padded (height, width) image.

    Full-size maps alive at the decoder's last step: the semantic sum, its normalised copy and
    the window count (20 + 20 + 1), image and normalised copy (3 + 3), trimap, planes and
    clicks (1 + 2 + 6), the encoder's 11-channel input, the 72-channel input of the alpha head
    and its 32- and 16-channel maps (with a LeakyReLU copy each). At 1/8 scale, the largest
    moment is the ASPP: layer4's 2048 channels, its 5 branches and their concatenation
    (2 x 5 x aspp), the projection, the (2048 + aspp) input of conv_up1 and its 256-channel
    output; at 1/4 and 1/2 the decoder's concatenations (512 and 384 channels) and convolutions.
    """
    full = height * width
    full_channels = 20 + 20 + 1 + 3 + 3 + 1 + 2 + 6 + 11 + 72 + 2 * 32 + 2 * 16
    aspp = config.aspp_channels
    eighth_channels = 2048 + 2 * 5 * aspp + aspp + (2048 + aspp) + 2 * 256
    quarter_channels = 512 + 256 + 256  # concatenation with layer1, conv_up2's output and activation
    half_channels = 384 + 64 + 64
    return element * full * (full_channels + eighth_channels / 64 + quarter_channels / 16 + half_channels / 4)
