"""``load_matting_model``: any supported weights -> a ready ``MattingModel``.

The architecture is read from the tensor shapes, the modules are built on the meta device (no
random initialisation of weights that get overwritten) and the loaded tensors are assigned in
place, so loading costs little more than reading the file.
"""

from __future__ import annotations

import torch

from .architecture import infer_architecture, split_components
from .checkpoint import is_memory_mapped, read_component, read_weights
from .errors import CheckpointError
from .matting_model import MattingModel
from .text import CaptionEmbedder, build_text_encoder, reset_position_ids, text_model_keys

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _assign(module: torch.nn.Module, tensors: dict[str, torch.Tensor], component: str) -> None:
    expected = module.state_dict().keys()
    missing = sorted(set(expected) - tensors.keys())
    unexpected = sorted(tensors.keys() - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors, e.g. {', '.join(component + '.' + k for k in missing[:4])}")
        if unexpected:
            parts.append(
                f"{len(unexpected)} unexpected tensors, e.g. {', '.join(component + '.' + k for k in unexpected[:4])}"
            )
        raise CheckpointError(
            f"The {component} weights do not match the architecture read from this file: {'; '.join(parts)}. "
            "The file is not an SDMatte / LiteSDMatte checkpoint in the released layout."
        )
    try:
        module.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise CheckpointError(f"The {component} weights have unexpected shapes: {first[-1].strip()}") from None


def load_matting_model(
    source,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> MattingModel:
    """Load SDMatte, SDMatte* or LiteSDMatte.

    source: a checkpoint path (``.safetensors``, ``.pth``/``.pt``/``.ckpt``), a folder in the
        authors' Hugging Face layout, or an already loaded state dict.
    device: where the UNet and autoencoder go (default CPU). The text encoder stays on the CPU.
    dtype: float32 (default), float16 or bfloat16 for the UNet and text encoder. The
        autoencoder stays float32 when half precision is asked for: SD2's VAE overflows in
        float16 at high resolution (why diffusers marks it ``force_upcast``), and a matte's
        edges live in exactly the low bits half precision drops, while the VAE is a small
        share of the weights.
    """
    if dtype is not None and dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"dtype must be one of float32, float16, bfloat16, got {dtype}")
    weights = read_weights(source, dtype)
    shapes = {key: tuple(t.shape) for key, t in weights.tensors.items()}
    arch = infer_architecture(shapes, weights.text_heads)
    parts = split_components(weights.tensors)
    del weights
    if parts["other"]:
        stray = sorted(parts["other"])[:4]
        raise CheckpointError(
            f"This file has {len(parts['other'])} tensors outside unet./vae./text_encoder., e.g. {', '.join(stray)}: "
            "it is not an SDMatte / LiteSDMatte checkpoint in the released layout."
        )

    with torch.device("meta"):
        model = MattingModel(arch)
    _assign(model.unet, parts["unet"], "unet")
    _assign(model.vae, {k: v.float() for k, v in parts["vae"].items()}, "vae")

    def load_text_encoder(tensors=None):
        tensors = tensors if tensors is not None else read_component(source, "text_encoder", dtype)
        with torch.device("meta"):
            encoder = build_text_encoder(arch.text_encoder)
        _assign(encoder, text_model_keys(encoder, tensors), "text_encoder")
        reset_position_ids(encoder)
        return encoder.requires_grad_(False)

    model.captions = CaptionEmbedder(load_text_encoder)
    # The default caption is embedded now and the encoder let go. From a safetensors file the
    # encoder is read again through its own memory map, which is unmapped afterwards: its pages,
    # once touched through the map the UNet keeps, would stay resident for the model's lifetime.
    text_tensors = parts.pop("text_encoder")
    encoder = load_text_encoder(None if is_memory_mapped(source) else text_tensors)
    del text_tensors
    model.empty_caption = model.captions("", encoder).to(model.dtype)
    model.eval().requires_grad_(False)
    if device is not None:
        model.to(device)
    return model
