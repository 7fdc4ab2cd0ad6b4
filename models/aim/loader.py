"""Build AIM from ``aimnet_pretrained_matting.pth`` (``{'state_dict': ...}``)."""

from __future__ import annotations

import logging

import torch

from ..errors import CheckpointError
from .config import AIMConfig
from .model import AIMModel

LOG = logging.getLogger("PromptMatte")

# Module prefixes of the authors' network -> ours. The decoders keep the authors' attribute names.
SEMANTIC_PREFIXES = ("psp_module.", "psp4.", "psp3.", "psp2.", "psp1.", "decoder4_g", "decoder3_g", "decoder2_g",
                     "decoder1_g", "decoder0_g", "decoder_final_g.")
MATTING_PREFIXES = ("bridge_block.", "decoder4_l.", "decoder3_l.", "decoder2_l.", "decoder1_l.", "decoder0_l.", "decoder_final_l.")
# The ``encoderN`` copy of the backbone -> its ``resnet.`` names (same modules, registered twice).
ENCODER_COPY = (("encoder0.0.", "conv1."), ("encoder0.1.", "bn1."), ("encoder1.0.", "layer1."), ("encoder2.", "layer2."),
                ("encoder3.", "layer3."), ("encoder4.", "layer4."))


def _backbone_tensors(tensors: dict, prefix: str) -> tuple[dict, list[str]]:
    """The backbone's tensors under our names, and the checkpoint keys left out (the other copy, ``fc``)."""
    picked, skipped = {}, []
    for key, value in tensors.items():
        if key.startswith("resnet."):
            if prefix == "resnet." and not key.startswith("resnet.fc."):
                picked[key[len("resnet."):]] = value
            else:
                skipped.append(key)
        elif key.startswith("encoder"):
            renamed = next((new + key[len(old):] for old, new in ENCODER_COPY if key.startswith(old)), None)
            if prefix == "encoder" and renamed is not None:
                picked[renamed] = value
            else:
                skipped.append(key)
    return picked, skipped


def _assign(module: torch.nn.Module, tensors: dict, what: str) -> None:
    """Load ``tensors`` into a meta-device ``module`` by reference (no copy), every key accounted for."""
    expected = set(module.state_dict().keys())
    missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
        raise CheckpointError(f"{what} does not match AIM's network ({'; '.join(parts)}); it is not an unmodified release file")
    try:
        module.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as error:  # a shape that disagrees with the others
        raise CheckpointError(f"{what} does not match AIM's network: {str(error).splitlines()[-1].strip()}") from None


def load_aim(weights, *, source_name: str = "the AIM checkpoint", device=None, dtype=None, **_) -> AIMModel:
    """The AIM model from ``weights`` (LoadedWeights of the authors' checkpoint)."""
    tensors = weights.tensors
    shapes = {key: tuple(value.shape) for key, value in tensors.items()}
    config = AIMConfig.from_shapes(shapes, source_name)
    with torch.device("meta"):
        model = AIMModel(config)
    backbone, skipped = _backbone_tensors(tensors, config.backbone_prefix)
    _assign(model.backbone, backbone, source_name)
    _assign(model.semantic_decoder, {k: v for k, v in tensors.items() if k.startswith(SEMANTIC_PREFIXES)}, source_name)
    _assign(model.matting_decoder, {k: v for k, v in tensors.items() if k.startswith(MATTING_PREFIXES)}, source_name)
    stray = sorted(k for k in tensors if not k.startswith(("resnet.", "encoder") + SEMANTIC_PREFIXES + MATTING_PREFIXES))
    if stray:
        raise CheckpointError(f"{source_name} has tensors AIM does not have ({', '.join(stray[:5])}); it is not an unmodified release file")
    if skipped:
        LOG.info(
            "AIM: %s: %d backbone tensors not loaded (the second copy of the shared backbone and the unused "
            "ImageNet head resnet.fc)", source_name, len(skipped)
        )
    model = model.to(device=device if device is not None else "cpu", dtype=dtype if dtype is not None else torch.float32)
    return model.eval()
