"""SAM's input and output geometry (``ResizeLongestSide``, ``Sam.preprocess``, ``postprocess_masks``).

The authors' predictor (and Matting Anything's inference, which calls the same
``ResizeLongestSide.apply_image``) resizes the uint8 RGB image with PIL's bilinear filter
(``torchvision.transforms.functional.resize`` on a PIL image, which is ``Image.resize(...,
BILINEAR)``: PIL's antialiased, fixed-point resampling). We call PIL the same way, so the resized
pixels are the authors' bit for bit; ``apply_image_torch`` (float bilinear with antialias) is a
different, only approximately equal path that their inference does not use.

Then, in float: (pixel - mean) / std with the mean and std in 0-255 units, zero padding at the
bottom and right to 1024². Prompt coordinates are scaled by new/old size per axis in float64
(numpy in the authors' ``apply_coords``), then made float32.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# Sam's defaults (ImageNet statistics in 0-255 units); the released checkpoints do not store them.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


def get_preprocess_shape(height: int, width: int, long_side: int = 1024) -> tuple[int, int]:
    """(new_height, new_width) with the longer side ``long_side``; each side rounded half up.

    Same float arithmetic as the authors: scale = long_side / max(h, w), then int(side * scale + 0.5).
    """
    scale = long_side * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> uint8 (the 8-bit image it came from: ComfyUI keeps value / 255)."""
    return (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)


def resize_longest_side(image: torch.Tensor, long_side: int = 1024) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> uint8 (B, 3, h, w), longest side ``long_side``, by PIL's bilinear filter.

    Runs on the CPU (PIL) and returns the result on ``image``'s device.
    """
    if image.dtype != torch.uint8 or image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"resize_longest_side takes a uint8 (B, 3, H, W) image, got {image.dtype} {tuple(image.shape)}")
    height, width = image.shape[-2:]
    new_height, new_width = get_preprocess_shape(height, width, long_side)
    pixels = image.permute(0, 2, 3, 1).cpu().numpy()
    resized = [
        np.asarray(Image.fromarray(np.ascontiguousarray(one)).resize((new_width, new_height), Image.BILINEAR))
        for one in pixels
    ]
    return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).contiguous().to(image.device)


def scale_coords(coords: torch.Tensor, original_size: tuple[int, int], long_side: int = 1024) -> torch.Tensor:
    """(..., 2) pixel (x, y) in the original image -> float32 pixels in the resized image.

    Multiplied by new_w / old_w and new_h / old_h in float64, then rounded to float32, as the
    authors' ``apply_coords`` (numpy float64) followed by ``torch.as_tensor(..., dtype=float)``.
    """
    old_h, old_w = original_size
    new_h, new_w = get_preprocess_shape(old_h, old_w, long_side)
    scale = torch.tensor([new_w / old_w, new_h / old_h], dtype=torch.float64, device=coords.device)
    return (coords.to(torch.float64) * scale).to(torch.float32)


def scale_boxes(boxes: torch.Tensor, original_size: tuple[int, int], long_side: int = 1024) -> torch.Tensor:
    """(..., 4) pixel boxes x1, y1, x2, y2 -> the same in the resized image (see ``scale_coords``)."""
    return scale_coords(boxes.reshape(*boxes.shape[:-1], 2, 2), original_size, long_side).reshape(boxes.shape)


def normalize_and_pad(
    image: torch.Tensor,
    pixel_mean: torch.Tensor,
    pixel_std: torch.Tensor,
    size: int = 1024,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """uint8 (B, 3, h, w) -> (B, 3, size, size) in ``dtype``: (pixel - mean) / std, zeros bottom/right."""
    height, width = image.shape[-2:]
    if height > size or width > size:
        raise ValueError(f"image of {height}x{width} is larger than the model's {size}x{size} input: resize it first")
    mean = pixel_mean.to(image.device, dtype).reshape(-1, 1, 1)
    std = pixel_std.to(image.device, dtype).reshape(-1, 1, 1)
    normalised = (image.to(dtype) - mean) / std
    return F.pad(normalised, (0, size - width, 0, size - height))


def postprocess_masks(
    masks: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int], image_size: int = 1024
) -> torch.Tensor:
    """(B, M, 256, 256) low-res logits -> (B, M, H, W) logits at the original size.

    As SAM: bilinear (align_corners=False) up to the padded square, crop the resized image's
    ``input_size`` (h, w), bilinear again to ``original_size`` (H, W).
    """
    masks = F.interpolate(masks, (image_size, image_size), mode="bilinear", align_corners=False)
    masks = masks[..., : input_size[0], : input_size[1]]
    return F.interpolate(masks, tuple(original_size), mode="bilinear", align_corners=False)
