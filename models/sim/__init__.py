"""SIM, Semantic Image Matting (Sun, Tang, Tai, CVPR 2021): trimap matting guided by matting patterns.

A patch classifier (its own file) names the pattern in the trimap's unknown region (hair, fur,
glass, smoke, net... 20 classes); a ResNet-50 matting network reads the image, the trimap and
that semantic map. Importing this package is cheap: the networks are imported on first load.
"""

from __future__ import annotations

from ..family import Companion, Family, ShapeMap
from .classes import CLASS_COLOURS, CLASS_NAMES, class_preview

CLASSIFIER = Companion(
    role="classifier",
    description="SIM's semantic classifier",
    file_names=("classifier_resnet50_best.pth.tar",),
    folder="matting",
)


def recognises(shapes: ShapeMap) -> bool:
    """The matting checkpoint: the encoder's side input for the 20-class semantic map and the ASPP."""
    side = shapes.get("encoder.conv1_side.weight")
    return side is not None and len(side) == 4 and tuple(side[2:]) == (7, 7) and "decoder.global_module.convs.0.0.weight" in shapes


def diagnose(shapes: ShapeMap) -> str | None:
    """SIM's classifier loaded on its own instead of beside the matting checkpoint."""
    fc, stem = shapes.get("fc.weight"), shapes.get("conv1.weight")
    if fc is not None and stem is not None and tuple(fc) == (20, 2048) and tuple(stem) == (64, 4, 7, 7):
        return (
            "SIM's semantic classifier (classifier_resnet50_best.pth.tar): load SIM's matting checkpoint "
            "(ckpt_best.pth) instead and keep the classifier in ComfyUI's models/matting/ folder or beside it"
        )
    return None


def load(weights, **options):
    from .loader import load_sim  # noqa: PLC0415

    return load_sim(weights, **options)


FAMILY = Family(
    name="sim",
    title="Semantic Image Matting (SIM)",
    prompt_kinds=("trimap",),
    looks_like="encoder.* (with encoder.conv1_side [64, 20, 7, 7]) and decoder.* tensors (the authors' "
    "ckpt_best.pth), with classifier_resnet50_best.pth.tar beside it",
    recognises=recognises,
    load=load,
    companions=(CLASSIFIER,),
    diagnose=diagnose,
)

__all__ = ["CLASSIFIER", "CLASS_COLOURS", "CLASS_NAMES", "FAMILY", "class_preview"]
