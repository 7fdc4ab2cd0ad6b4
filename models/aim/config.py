"""AIMNet described by the shapes of its checkpoint's tensors (never by file names).

The released ``aimnet_pretrained_matting.pth`` holds the backbone twice: as ``resnet.*`` (the
torchvision-style ResNet-34 the authors build, with its unused ImageNet head ``resnet.fc``) and
as ``encoder0.*`` .. ``encoder4.*`` (the same modules registered again under the names the
forward uses). Widths are fixed by the architecture; the block counts of the four residual
layers are read from the keys, so a reduced test network (fewer blocks) loads the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from ..errors import CheckpointError

RESNET34_BLOCKS = (3, 4, 6, 3)
# Where each residual layer lives in the ``encoderN`` copy (layer1 is wrapped in a Sequential).
ENCODER_COPY_OF_LAYER = {1: "encoder1.0.", 2: "encoder2.", 3: "encoder3.", 4: "encoder4."}


def _blocks(shapes: Mapping[str, tuple], layer_prefix: str) -> int:
    pattern = re.compile(re.escape(layer_prefix) + r"(\d+)\.conv1\.weight$")
    indices = [int(m.group(1)) for key in shapes if (m := pattern.match(key))]
    return max(indices) + 1 if indices else 0


@dataclass(frozen=True)
class AIMConfig:
    """AIMNet: a ResNet-34 with max-pooling, a semantic (trimap) decoder and a matting decoder.

    blocks: BasicBlocks in layer1..layer4 ((3, 4, 6, 3) released).
    backbone_prefix: where the file keeps the backbone: "resnet." (released) or "encoder" (a
        file that kept only the ``encoderN`` copy, e.g. a safetensors conversion).
    """

    blocks: tuple[int, int, int, int] = RESNET34_BLOCKS
    backbone_prefix: str = "resnet."

    @classmethod
    def from_shapes(cls, shapes: Mapping[str, tuple], what: str = "the AIM checkpoint") -> "AIMConfig":
        if "resnet.conv1.weight" in shapes:
            prefix = "resnet."
            blocks = tuple(_blocks(shapes, f"resnet.layer{n}.") for n in range(1, 5))
            stem = tuple(shapes["resnet.conv1.weight"])
        elif "encoder0.0.weight" in shapes:
            prefix = "encoder"
            blocks = tuple(_blocks(shapes, ENCODER_COPY_OF_LAYER[n]) for n in range(1, 5))
            stem = tuple(shapes["encoder0.0.weight"])
        else:
            raise CheckpointError(f"{what} has no backbone (resnet.* or encoder0.* tensors); it is not a complete AIM checkpoint")
        if stem != (64, 3, 7, 7):
            raise CheckpointError(f"{what}: the backbone's first convolution is {list(stem)}; AIM's is [64, 3, 7, 7]")
        if 0 in blocks:
            raise CheckpointError(f"{what} lacks backbone blocks (found {blocks} per layer); it is not a complete AIM checkpoint")
        return cls(blocks=blocks, backbone_prefix=prefix)
