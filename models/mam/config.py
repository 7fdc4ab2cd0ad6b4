"""The Mask-to-Matte module's architecture, read from the tensor shapes of a MAM checkpoint.

The released ``mam_vitb.pth`` holds only the Mask-to-Matte (M2M) module of Matting Anything
(``networks/m2ms/conv_sam.py``: ``SAM_Decoder_Deep(256, [2, 3, 3, 2])``): three upsampling
stages (``layer2``/``layer3``/``layer4``) of residual blocks with spectral-normalised
convolutions, a last transposed convolution to full resolution (``conv1``/``bn1``) and three
alpha heads (``refine_OS8``/``refine_OS4``/``refine_OS1``). Every number below follows from a
shape, so reduced variants (fewer blocks, 5x5 kernels, the 64-wide last stage) load too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from ..errors import CheckpointError

STAGES = ("layer2", "layer3", "layer4")
# Each stage's input is the previous features plus the image (3) and the SAM mask (1) resized.
GUIDE_CHANNELS = 4

# A tensor only the M2M module has: its first stage's first spectral-normalised convolution.
SIGNATURE_KEY = "layer2.0.conv1.module.weight_bar"


@dataclass(frozen=True)
class M2mConfig:
    embedding_channels: int = 256  # SAM's image embedding (the neck's width), M2M's OS16 input
    stage_channels: tuple[int, ...] = (128, 64, 32)  # outputs of layer2 / layer3 / layer4
    stage_blocks: tuple[int, ...] = (3, 3, 2)  # residual blocks per stage
    block_kernel_size: int = 3  # 5 for the authors' ``large_kernel`` option
    head_kernel_size: int = 3
    head_channels: int = 32  # hidden width of the three alpha heads
    full_resolution_channels: int = 32  # output of the last transposed convolution (``conv1``)

    def stage_input_channels(self, stage: int) -> int:
        """Channels entering ``stage`` (0-based): previous features + image + mask."""
        previous = self.embedding_channels if stage == 0 else self.stage_channels[stage - 1]
        return previous + GUIDE_CHANNELS


def _shape(shapes: Mapping[str, tuple], key: str) -> tuple:
    if key not in shapes:
        raise CheckpointError(f"not a Matting Anything (M2M) checkpoint: it has no {key!r} tensor")
    return tuple(shapes[key])


def _block_count(shapes: Mapping[str, tuple], stage: str) -> int:
    pattern = re.compile(re.escape(stage) + r"\.(\d+)\.conv1\.")
    indices = {int(m.group(1)) for key in shapes if (m := pattern.match(key))}
    count = 0
    while count in indices:
        count += 1
    return count


# Every tensor of the module lives under one of these (MGMatting-style decoders inside other
# models carry a prefix such as "decoder." and an encoder beside them).
TOP_LEVEL_NAMES = frozenset(STAGES + ("conv1", "bn1", "refine_OS1", "refine_OS4", "refine_OS8"))


def looks_like_m2m(shapes: Mapping[str, tuple]) -> bool:
    """True for the M2M module's tensor names alone (spectral-norm stages, the three alpha heads)."""
    return (
        SIGNATURE_KEY in shapes
        and "conv1.module.weight_bar" in shapes
        and all(f"refine_OS{s}.0.weight" in shapes for s in (1, 4, 8))
        and all(key.split(".", 1)[0] in TOP_LEVEL_NAMES for key in shapes)
    )


def read_m2m_config(shapes: Mapping[str, tuple]) -> M2mConfig:
    """The ``M2mConfig`` of an M2M state dict (tensor name -> shape, ``module.`` already stripped)."""
    blocks = tuple(_block_count(shapes, stage) for stage in STAGES)
    if 0 in blocks:
        raise CheckpointError(
            f"not a Matting Anything (M2M) checkpoint: stage {STAGES[blocks.index(0)]} has no blocks"
        )
    stage_channels = tuple(_shape(shapes, f"{stage}.0.conv2.module.weight_bar")[0] for stage in STAGES)
    first_in = _shape(shapes, SIGNATURE_KEY)[0]  # ConvTranspose2d weight: (in, out, 4, 4)
    block_kernel = _shape(shapes, "layer2.0.conv2.module.weight_bar")[-1]
    head = _shape(shapes, "refine_OS1.0.weight")
    last = _shape(shapes, "conv1.module.weight_bar")
    config = M2mConfig(
        embedding_channels=first_in - GUIDE_CHANNELS,
        stage_channels=stage_channels,
        stage_blocks=blocks,
        block_kernel_size=block_kernel,
        head_kernel_size=head[-1],
        head_channels=head[0],
        full_resolution_channels=last[1],
    )
    if last[0] != stage_channels[-1] or head[1] != config.full_resolution_channels:
        raise CheckpointError(
            "not a Matting Anything (M2M) checkpoint: the last stage's width "
            f"{stage_channels[-1]} does not feed conv1 {last} and refine_OS1 {head}"
        )
    return config
