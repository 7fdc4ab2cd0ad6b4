"""SDMatte / SDMatte* / LiteSDMatte weights, already read -> a ready ``MattingModel``.

The architecture is read from the tensor shapes, the modules are built on the meta device (no
random initialisation of weights that get overwritten) and the loaded tensors are assigned in
place, so loading costs little more than reading the file.
"""

from __future__ import annotations

import logging
from typing import Mapping

import torch

from ..checkpoint import LoadedWeights, describe_skipped, read_weights
from ..errors import CheckpointError
from ..residency import release_mapped_pages
from .architecture import infer_architecture, select_model_tensors, split_components
from .matting_model import MattingModel
from .text import CaptionEmbedder, build_text_encoder, reset_position_ids, text_model_keys

log = logging.getLogger("PromptMatte")


RELEASE_EVERY_BYTES = 256 << 20  # how much converted source may stay resident before it is handed back


def _cast(tensors: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Floating-point tensors in ``dtype`` (None: as stored), one at a time.

    The source pages of converted tensors, when they come from a file map, are handed back every
    ``RELEASE_EVERY_BYTES`` (one look at the process's mappings each time), so converting a mapped
    file costs about the result's size, not the result plus the file.
    """
    out, converted, pending = {}, [], 0
    for key, tensor in tensors.items():
        if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
            out[key] = tensor.to(dtype)
            converted.append(tensor)
            pending += tensor.nbytes
            if pending >= RELEASE_EVERY_BYTES:
                release_mapped_pages(converted)
                converted, pending = [], 0
        else:
            out[key] = tensor
    if converted:
        release_mapped_pages(converted)
    return out


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


def load_sdmatte(
    weights: LoadedWeights,
    *,
    source,
    source_name: str = "the checkpoint",
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    **_,
) -> MattingModel:
    """Build SDMatte, SDMatte* or LiteSDMatte from ``weights`` read from ``source``.

    source: where ``weights`` came from (a checkpoint path, a folder in the authors' Hugging Face
        layout, or a state dict); a legacy-format ``.pth`` is read again from it for a caption.
    device: where the UNet and autoencoder go (default CPU). The text encoder stays on the CPU.
    dtype: float32 (default), float16 or bfloat16 for the UNet and text encoder. The
        autoencoder is always float32, read from the file's own values (never through half
        precision): SD2's VAE overflows in float16 at high resolution (why diffusers marks it
        ``force_upcast``), and a matte's edges live in exactly the low bits half precision
        drops, while the VAE is a small share of the weights.

    Tensors that are not part of the model (optimizer state, EMA or other leftovers under other
    names, ``position_ids`` buffers) are skipped with one log line; missing or misshapen model
    tensors are errors.
    """
    # ``weights`` are as stored: each component is cast on its own below
    shapes = {key: tuple(t.shape) for key, t in weights.tensors.items()}
    arch = infer_architecture(shapes, weights.text_heads)  # names foreign files from all their keys
    tensors, skipped = select_model_tensors(weights.tensors)
    if skipped or weights.other_entries:
        log.info(
            "PromptMatte: %s: skipped what is not part of the model: %s",
            source_name, describe_skipped(skipped, weights.other_entries),
        )
    parts = split_components(tensors)
    memory_mapped = weights.memory_mapped
    del weights, tensors

    with torch.device("meta"):
        model = MattingModel(arch)
    _assign(model.unet, _cast(parts["unet"], dtype), "unet")
    _assign(model.vae, _cast(parts["vae"], torch.float32), "vae")

    # The text encoder runs only for captions: the default one now, others rarely. Its tensors
    # are kept as views of the file map when there is one (nothing resident, nothing re-read);
    # a legacy-format .pth, read whole into memory, is read again for a new caption instead of
    # holding the encoder's weights in memory for the model's lifetime.
    text_tensors = parts.pop("text_encoder")

    def text_encoder_tensors():
        if memory_mapped or isinstance(source, Mapping):
            return text_tensors
        reread, _ = select_model_tensors(read_weights(source).tensors)
        return split_components(reread)["text_encoder"]

    def load_text_encoder():
        with torch.device("meta"):
            encoder = build_text_encoder(arch.text_encoder)
        _assign(encoder, text_model_keys(encoder, _cast(text_encoder_tensors(), dtype)), "text_encoder")
        reset_position_ids(encoder)
        return encoder.requires_grad_(False)

    def release_text_pages():
        release_mapped_pages(text_tensors.values())

    model.captions = CaptionEmbedder(load_text_encoder, after_use=release_text_pages)
    model.empty_caption = model.captions("").to(model.dtype)
    if not (memory_mapped or isinstance(source, Mapping)):
        text_tensors = {}  # read whole: dropped, re-read for a new caption
    model.eval().requires_grad_(False)
    if device is not None:
        model.to(device)
    return model
