"""Matte Composite: image + alpha -> composite RGB, decontaminated foreground, RGBA."""

from __future__ import annotations

import logging
import re

import torch
import torch.nn.functional as F

import comfy.utils
from comfy_api.latest import io

from ..matting.errors import PromptError
from ..matting.masks import mask_batch
from .types import CATEGORY

LOG = logging.getLogger("PromptMatte")
BACKGROUNDS = ["transparent", "color", "image"]
_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


def parse_color(text: str) -> torch.Tensor:
    m = _HEX.match(str(text).strip())
    if not m:
        raise PromptError(f"color {text!r} is not a hex colour; write it like #00ff00 (or #0f0)")
    h = m.group(1)
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return torch.tensor([int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4)])


def pair_batches(image: torch.Tensor, alpha: torch.Tensor):
    """(B, H, W, 3) image and (N, H, W) alpha made to the same batch size (one side may be 1).

    The alpha may come in any MASK form other nodes emit (see ``matting.masks.mask_batch``); one of
    another size than the image is resized to it (bilinear) and the log says so.
    """
    if image.dim() == 3:
        image = image[None]
    alpha = mask_batch(alpha, "alpha")
    if image.shape[-1] != 3:
        raise PromptError(f"the image has {image.shape[-1]} channels; Matte Composite needs an RGB image "
                          "(3 channels): drop the alpha channel first")
    h, w = image.shape[1:3]
    if tuple(alpha.shape[1:3]) != (h, w):
        LOG.warning("PromptMatte: Matte Composite: the alpha is %d×%d but the image is %d×%d (width×height): "
                    "alpha resized to the image (bilinear)", alpha.shape[2], alpha.shape[1], w, h)
        alpha = F.interpolate(alpha[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    b, n = image.shape[0], alpha.shape[0]
    if b != n:
        if b == 1:
            image = image.expand(n, -1, -1, -1)
        elif n == 1:
            alpha = alpha.expand(b, -1, -1)
        else:
            raise PromptError(f"batch mismatch: {b} images and {n} alphas; give one alpha per image, "
                              "one alpha for all images, or one image for all alphas")
    return image.float(), alpha.to(image.device).float().clamp(0, 1)


class PromptMatteComposite(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PromptMatteComposite",
            display_name="Matte Composite",
            category=CATEGORY,
            description="Cuts the subject out with an alpha matte: composite over a background, "
                        "decontaminated foreground colours, and an RGBA image.",
            inputs=[
                io.Image.Input("image", tooltip="The image the alpha was computed from."),
                io.Mask.Input("alpha", tooltip="Alpha, 1 = foreground (the output of Matting). A mask from "
                                               "Load Image is 1 - alpha: invert it first."),
                io.Combo.Input("background", options=BACKGROUNDS, default="transparent",
                               tooltip="What shows through where alpha < 1 in the 'image' output: black "
                                       "(transparent; use 'rgba' for real transparency), 'color', or "
                                       "'background_image'."),
                io.String.Input("color", default="#00ff00",
                                tooltip="Background colour for background = color, hex like #00ff00."),
                io.Boolean.Input("estimate_foreground", default=True,
                                 tooltip="Recover the subject's own colours at soft edges (removes the old "
                                         "background's colour bleeding into hair and fur)."),
                io.Image.Input("background_image", optional=True,
                               tooltip="Background for background = image; resized to the image size."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="Composite RGB: foreground over the background."),
                io.Image.Output(display_name="foreground", tooltip="Foreground colours (RGB, not multiplied "
                                                                   "by alpha)."),
                io.Image.Output(display_name="rgba", tooltip="RGBA IMAGE (straight alpha): core Save Image writes "
                                                             "it as a PNG with transparency."),
            ],
        )

    @classmethod
    def execute(cls, image, alpha, background: str, color: str, estimate_foreground: bool,
                background_image=None) -> io.NodeOutput:
        from ..matting.outputs import cutouts  # the batch command's --foreground / --rgba files too

        image, alpha = pair_batches(image, alpha)
        fg, rgba = cutouts(image, alpha, estimate_foreground)
        a = alpha[..., None]
        if background == "color":
            bg = parse_color(color).to(image).expand_as(fg)
        elif background == "image":
            if background_image is None:
                raise PromptError("background = image needs 'background_image' connected")
            bg = _fit_background(background_image[..., :3].to(image), fg.shape)
        else:
            bg = torch.zeros_like(fg)
        comp = fg * a + bg * (1 - a)
        return io.NodeOutput(comp, fg, rgba)


def _fit_background(bg: torch.Tensor, shape) -> torch.Tensor:
    n, h, w, _ = shape
    if tuple(bg.shape[1:3]) != (h, w):
        bg = comfy.utils.common_upscale(bg.movedim(-1, 1), w, h, "bilinear", "center").movedim(1, -1)
    if bg.shape[0] != n:
        idx = torch.arange(n) % bg.shape[0]
        bg = bg[idx]
    return bg
