"""AIM, Deep Automatic Image Matting (Li, Zhang, Tao, IJCAI 2021): alpha of the salient foreground, no prompt.

A ResNet-34 with max-pooling feeds a semantic decoder (a background / unknown / foreground map)
and a matting decoder (the detail); the authors' Hybrid test strategy takes the trimap from a
1/4-scale run and the detail from a 1/2-scale run. In PromptMatte it answers the automatic
prompt (nothing connected). Importing this package is cheap: the network is imported on first load.
"""

from __future__ import annotations

from ..family import Family, ShapeMap

CHECKPOINT_FILE = "aimnet_pretrained_matting.pth"


def recognises(shapes: ShapeMap) -> bool:
    """The semantic decoder's spatial gate (a 7x7 convolution of 2 maps) beside the matting decoder's head."""
    gate = shapes.get("decoder0_g_spatial.weight")
    head = shapes.get("decoder_final_l.weight")
    return (
        gate is not None
        and tuple(gate) == (1, 2, 7, 7)
        and head is not None
        and tuple(head) == (1, 64, 3, 3)
        and "bridge_block.0.weight" in shapes
    )


def diagnose(shapes: ShapeMap) -> str | None:
    """A ResNet-34 ImageNet classifier, such as AIM's backbone file, given instead of the matting network."""
    stem, fc = shapes.get("conv1.weight"), shapes.get("fc.weight")
    if stem is not None and fc is not None and tuple(stem) == (64, 3, 7, 7) and tuple(fc) == (1000, 512) and "layer4.0.conv1.weight" in shapes:
        return (
            "a ResNet-34 ImageNet classifier (such as AIM's backbone r34mp_pretrained_imagenet.pth.tar, used only "
            f"for training): for automatic matting load AIM's {CHECKPOINT_FILE}"
        )
    return None


def load(weights, **options):
    from .loader import load_aim  # noqa: PLC0415

    return load_aim(weights, **options)


FAMILY = Family(
    name="aim",
    title="Deep Automatic Image Matting (AIM)",
    prompt_kinds=("auto",),
    looks_like=f"resnet.* / encoder0-4.* (a ResNet-34), decoder*_g and decoder*_l tensors with decoder0_g_spatial "
    f"[1, 2, 7, 7] (the authors' {CHECKPOINT_FILE})",
    recognises=recognises,
    load=load,
    diagnose=diagnose,
)

__all__ = ["CHECKPOINT_FILE", "FAMILY"]
