"""Build SIM from its two files: the matting checkpoint and the classifier beside it."""

from __future__ import annotations

import torch

from ..checkpoint import read_weights
from ..errors import CheckpointError
from ..family import find_required
from .config import SIMClassifierConfig, SIMMattingConfig
from .model import SIMModel

# Heads the authors train but never run at test time (foreground/background colours and
# attention): in the file, not built.
TRAINING_ONLY_PREFIXES = ("decoder.conv_up4_fb.", "decoder.conv_up4_attn.")


def _assign(module: torch.nn.Module, tensors: dict, what: str) -> None:
    """Load ``tensors`` into a meta-device ``module`` by reference (no copy), every key accounted for."""
    expected = module.state_dict().keys()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}" if missing else "",
                f"unexpected {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}" if unexpected else "",
            )
            if part
        )
        raise CheckpointError(f"{what} does not match SIM's network ({detail}); it is not an unmodified release file")
    try:
        module.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as error:  # a shape that disagrees with the others
        raise CheckpointError(f"{what} does not match SIM's network: {str(error).splitlines()[-1].strip()}") from None


def load_sim(weights, *, source_name: str = "the SIM checkpoint", device=None, dtype=None, find_companion=None, **_) -> SIMModel:
    """The SIM model from ``weights`` (the matting checkpoint's LoadedWeights) and its classifier file."""
    from . import CLASSIFIER, FAMILY  # noqa: PLC0415  (the package imports this module lazily)

    shapes = {key: tuple(value.shape) for key, value in weights.tensors.items()}
    config = SIMMattingConfig.from_shapes(shapes, source_name)
    classifier_path = find_required(FAMILY, CLASSIFIER, find_companion)
    classifier_weights = read_weights(classifier_path)
    classifier_name = str(classifier_path)
    classifier_config = SIMClassifierConfig.from_shapes(
        {key: tuple(value.shape) for key, value in classifier_weights.tensors.items()}, classifier_name
    )
    with torch.device("meta"):
        model = SIMModel(config, classifier_config)
    matting = {key: value for key, value in weights.tensors.items() if not key.startswith(TRAINING_ONLY_PREFIXES)}
    _assign(model.encoder, {k[len("encoder."):]: v for k, v in matting.items() if k.startswith("encoder.")}, source_name)
    _assign(model.decoder, {k[len("decoder."):]: v for k, v in matting.items() if k.startswith("decoder.")}, source_name)
    stray = sorted(k for k in matting if not k.startswith(("encoder.", "decoder.")))
    if stray:
        raise CheckpointError(f"{source_name} has tensors SIM does not have ({', '.join(stray[:5])}); it is not an unmodified release file")
    _assign(model.classifier, dict(classifier_weights.tensors), classifier_name)
    target_dtype = dtype if dtype is not None else torch.float32
    model = model.to(device=device if device is not None else "cpu")
    model = model.to(dtype=target_dtype)
    return model.eval()
