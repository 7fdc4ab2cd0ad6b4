"""SIM's two networks described by the shapes of their checkpoints' tensors (never by file names).

The matting checkpoint (``ckpt_best.pth``) holds ``encoder.*`` (a ResNet-50-v1c with a deep stem
and a side convolution for the semantic map) and ``decoder.*`` (ASPP and an upsampling decoder).
The classifier checkpoint (``classifier_resnet50_best.pth.tar``) is a torchvision-layout ResNet
(``conv1``, ``layer1..4``, ``fc``) whose first convolution reads RGB plus the trimap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from ..errors import CheckpointError

# The ASPP's dilation rates are not stored in the file: both released configurations
# (config/sim.toml and config/adobe.toml) use these.
ATROUS_RATES = (12, 24, 36)

# The released files' block counts (ResNet-50); the shapes decide, these are only for messages.
RESNET50_BLOCKS = (3, 4, 6, 3)


def _blocks_per_layer(shapes: Mapping[str, tuple], prefix: str) -> tuple[int, int, int, int]:
    """How many bottleneck blocks each of layer1..layer4 under ``prefix`` holds."""
    pattern = re.compile(re.escape(prefix) + r"layer([1-4])\.(\d+)\.conv1\.weight$")
    counts = [0, 0, 0, 0]
    for key in shapes:
        match = pattern.match(key)
        if match:
            layer, index = int(match.group(1)), int(match.group(2))
            counts[layer - 1] = max(counts[layer - 1], index + 1)
    return tuple(counts)


def _shape(shapes: Mapping[str, tuple], key: str, what: str) -> tuple:
    if key not in shapes:
        raise CheckpointError(f"{what} has no tensor {key!r}; it is not a complete SIM checkpoint")
    return tuple(shapes[key])


@dataclass(frozen=True)
class SIMMattingConfig:
    """The matting network (encoder + decoder) of ``ckpt_best.pth``.

    input_channels: 11 for the released files (3 normalised RGB + 6 click maps + 2 trimap planes).
    semantic_channels: classes of the semantic map fed to ``encoder.conv1_side`` (20).
    blocks: bottleneck blocks in layer1..layer4 ((3, 4, 6, 3) released).
    aspp_channels: width of each ASPP branch (256 released).
    atrous_rates: dilations of the ASPP's 3x3 branches (not in the file; see ATROUS_RATES).
    """

    input_channels: int = 11
    semantic_channels: int = 20
    blocks: tuple[int, int, int, int] = RESNET50_BLOCKS
    aspp_channels: int = 256
    atrous_rates: tuple[int, ...] = ATROUS_RATES

    @classmethod
    def from_shapes(cls, shapes: Mapping[str, tuple], what: str = "the SIM checkpoint") -> "SIMMattingConfig":
        stem = _shape(shapes, "encoder.conv1.weight", what)  # (64, input_channels, 3, 3)
        side = _shape(shapes, "encoder.conv1_side.weight", what)  # (64, 20, 7, 7)
        aspp = _shape(shapes, "decoder.global_module.convs.0.0.weight", what)  # (aspp, 2048, 1, 1)
        branches = sum(1 for key in shapes if re.match(r"decoder\.global_module\.convs\.\d+\.1\.weight$", key))
        blocks = _blocks_per_layer(shapes, "encoder.")
        if 0 in blocks:
            raise CheckpointError(f"{what} lacks encoder blocks (found {blocks} per layer); it is not a complete SIM checkpoint")
        # branches = 1x1 + one per rate + image pooling; the rates themselves are fixed (ATROUS_RATES).
        if branches != len(ATROUS_RATES) + 2:
            raise CheckpointError(f"{what} has {branches} ASPP branches; SIM's have {len(ATROUS_RATES) + 2}")
        return cls(input_channels=stem[1], semantic_channels=side[1], blocks=blocks, aspp_channels=aspp[0])


@dataclass(frozen=True)
class SIMClassifierConfig:
    """The patch classifier of ``classifier_resnet50_best.pth.tar`` (torchvision ResNet layout).

    input_channels: 4 (ImageNet-normalised RGB + trimap / 255).
    num_classes: 20 matting patterns (``CLASS_NAMES``).
    blocks: bottleneck blocks in layer1..layer4 ((3, 4, 6, 3) released).
    """

    input_channels: int = 4
    num_classes: int = 20
    blocks: tuple[int, int, int, int] = RESNET50_BLOCKS

    @classmethod
    def from_shapes(cls, shapes: Mapping[str, tuple], what: str = "SIM's classifier") -> "SIMClassifierConfig":
        stem = _shape(shapes, "conv1.weight", what)  # (64, 4, 7, 7)
        fc = _shape(shapes, "fc.weight", what)  # (20, 2048)
        blocks = _blocks_per_layer(shapes, "")
        if 0 in blocks or len(stem) != 4 or stem[2:] != (7, 7) or fc[1] != 2048:
            raise CheckpointError(
                f"{what} is not a ResNet-50-style classifier (conv1 {stem}, fc {fc}, blocks {blocks}); "
                "use SIM's classifier_resnet50_best.pth.tar"
            )
        return cls(input_channels=stem[1], num_classes=fc[0], blocks=blocks)
