"""The authors' test strategy ("Hybrid", ``core/test.py`` ``inference_img``) as sizes and steps.

1. A shorter side over 1080 px is first brought to 1080 (OpenCV bilinear on uint8, the longer
   side ``int(1080 * long / short)``); the alpha is resized back at the end.
2. The network runs twice: at 1/4 scale for the semantic trimap and at 1/2 scale for the matting
   detail, each side ``int(side * ratio)`` floored to a multiple of 32 and capped at 1600.
3. The 1/4 run's class map (argmax -> 0 / 128 / 255) is upsampled to the working size with
   scikit-image 0.14.5's resize; where it is exactly 0 or 255 it is the alpha, elsewhere the 1/2
   run's alpha (upsampled the same way) is.
"""

from __future__ import annotations

from typing import NamedTuple

SHORTER_SIDE_LIMIT = 1080
MAX_SIDE = 1600
MULTIPLE = 32
SEMANTIC_RATIO = 1 / 4
DETAIL_RATIO = 1 / 2
# The 1/4 run needs at least one 32 px step per side.
MIN_SIDE = 128


class HybridSizes(NamedTuple):
    working: tuple[int, int]  # (height, width) the authors' path works at (after the 1080 rule)
    semantic: tuple[int, int]  # network input of the 1/4 run
    detail: tuple[int, int]  # network input of the 1/2 run


def working_size(height: int, width: int) -> tuple[int, int]:
    """The image size after the 1080 rule (``test_samples``): unchanged unless both sides exceed 1080."""
    if min(height, width) <= SHORTER_SIDE_LIMIT:
        return height, width
    if height >= width:
        return int(SHORTER_SIDE_LIMIT * height / width), SHORTER_SIDE_LIMIT
    return SHORTER_SIDE_LIMIT, int(SHORTER_SIDE_LIMIT * width / height)


def network_size(height: int, width: int, ratio: float) -> tuple[int, int]:
    """``int(side * ratio)`` floored to a multiple of 32, at most 1600, per side."""
    scaled = (int(height * ratio), int(width * ratio))
    return tuple(min(MAX_SIDE, side - side % MULTIPLE) for side in scaled)


def hybrid_sizes(height: int, width: int) -> HybridSizes:
    """Every size the hybrid path uses for an input of (height, width); refuses inputs under 128 px."""
    if min(height, width) < MIN_SIDE:
        raise ValueError(
            f"AIM needs at least {MIN_SIDE} px per side (its 1/4-scale pass works in steps of 32 px); "
            f"this image is {width}x{height}: upscale it or use a larger crop"
        )
    working = working_size(height, width)
    return HybridSizes(working, network_size(*working, SEMANTIC_RATIO), network_size(*working, DETAIL_RATIO))
