"""Weight processing: release checkpoints -> safetensors, and SD2 -> an SDMatte training start.

``convert_checkpoint``: a released ``.pth`` (or any supported source) -> ``.safetensors``,
optionally in half precision, with a metadata header (family, architecture summary) and a
tensor-by-tensor check of the written file.

``init_from_sd2``: what the authors' ``process_weight.py`` and model constructor do to Stable
Diffusion 2 weights before training: zero ``point_embedding`` / ``bbox_embedding``; ``conv_in``
widened to 8 input channels (the 4-channel kernel repeated and halved, so image ++ image gives the
original response); ``aux_conv_in`` (4 -> prompt token width) whose first ``block_out[0]`` output
channels copy the original ``conv_in`` and the rest are zero.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .architecture import NUM_POINT_COORDS, infer_architecture
from ..checkpoint import read_weights
from .architecture import select_model_tensors
from ..errors import CheckpointError

POINT_FREQUENCIES = 84  # sinusoid width per click coordinate: 20 x 84 = 1680 inputs
BOX_FREQUENCIES = 320  # sinusoid width per box coordinate: 4 x 320 = 1280 inputs
PROMPT_TOKEN_DIM = 1024  # aux_conv_in width: SD2's cross-attention width


def _write_verified(tensors: dict[str, torch.Tensor], destination: Path, metadata: dict[str, str]) -> None:
    """Write to a temporary name, compare every tensor read back, then move into place."""
    destination = Path(destination)
    partial = destination.with_name(destination.name + ".partial")
    contiguous = {k: v.contiguous() for k, v in tensors.items()}
    save_file(contiguous, str(partial), metadata=metadata)
    with safe_open(str(partial), framework="pt") as written:
        if set(written.keys()) != set(contiguous):
            partial.unlink()
            raise CheckpointError(f"writing {destination.name} lost tensors; nothing was written")
        for key, tensor in contiguous.items():
            if not torch.equal(written.get_tensor(key), tensor):
                partial.unlink()
                raise CheckpointError(f"round trip of {destination.name} changed tensor {key}; nothing was written")
    os.replace(partial, destination)


def architecture_metadata(tensors: dict[str, torch.Tensor], text_heads: int | None = None) -> dict[str, str]:
    arch = infer_architecture({k: tuple(v.shape) for k, v in tensors.items()}, text_heads)
    return {
        "format": "pt",
        "family": arch.family,
        "architecture": json.dumps(arch.summary(), sort_keys=True),
        "text_encoder_heads": str(arch.text_encoder.num_attention_heads),
    }


def convert_checkpoint(source, destination, dtype: torch.dtype | None = None) -> dict[str, str]:
    """Any supported checkpoint -> a verified ``.safetensors`` file; returns its metadata header.

    Only the model's tensors are written (see ``select_model_tensors``). ``dtype`` applies to the
    UNet and the text encoder; the autoencoder keeps its stored precision, as the loader runs it
    in float32 (see ``load_matting_model``).
    """
    weights = read_weights(source)
    metadata = architecture_metadata(weights.tensors, weights.text_heads)
    metadata["dtype"] = str(dtype or "as stored").replace("torch.", "")
    tensors, _ = select_model_tensors(weights.tensors)
    tensors = {k: v if k.startswith("vae.") or dtype is None or not v.is_floating_point() else v.to(dtype)
               for k, v in tensors.items()}
    _write_verified(tensors, Path(destination), metadata)
    return metadata


def _zero_embedding(time_embed_dim: int, inputs: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {
        "linear_1.weight": torch.zeros(time_embed_dim, inputs, dtype=dtype),
        "linear_1.bias": torch.zeros(time_embed_dim, dtype=dtype),
        "linear_2.weight": torch.zeros(time_embed_dim, time_embed_dim, dtype=dtype),
        "linear_2.bias": torch.zeros(time_embed_dim, dtype=dtype),
    }


def matting_unet_from_sd2(unet: dict[str, torch.Tensor], prompt_token_dim: int = PROMPT_TOKEN_DIM) -> dict[str, torch.Tensor]:
    """A Stable Diffusion 2 UNet state dict (diffusers keys) -> the SDMatte UNet's initial state."""
    if "point_embedding.linear_1.weight" in unet:
        raise CheckpointError("these weights are already an SDMatte UNet; nothing to initialise")
    if "conv_in.weight" not in unet or unet["conv_in.weight"].shape[1] != 4:
        raise CheckpointError("init-from-sd2 needs a plain Stable Diffusion 2 UNet (conv_in with 4 input channels)")
    out = dict(unet)
    kernel, bias = unet["conv_in.weight"], unet["conv_in.bias"]
    time_dim, dtype = unet["time_embedding.linear_1.weight"].shape[0], kernel.dtype
    for key, value in _zero_embedding(time_dim, NUM_POINT_COORDS * POINT_FREQUENCIES, dtype).items():
        out[f"point_embedding.{key}"] = value
    for key, value in _zero_embedding(time_dim, 4 * BOX_FREQUENCIES, dtype).items():
        out[f"bbox_embedding.{key}"] = value
    aux_kernel = torch.zeros(prompt_token_dim, *kernel.shape[1:], dtype=dtype)
    aux_bias = torch.zeros(prompt_token_dim, dtype=dtype)
    aux_kernel[: kernel.shape[0]] = kernel
    aux_bias[: kernel.shape[0]] = bias
    out["aux_conv_in.weight"], out["aux_conv_in.bias"] = aux_kernel, aux_bias
    out["conv_in.weight"] = kernel.repeat(1, 2, 1, 1) / 2
    return out


def init_from_sd2(source, destination, dtype: torch.dtype | None = None) -> dict[str, str]:
    """SD2 weights (HF folder with unet/ vae/ text_encoder/, or a flat prefixed state dict) -> SDMatte init file."""
    weights = read_weights(source, dtype)
    unet = {k[len("unet.") :]: v for k, v in weights.tensors.items() if k.startswith("unet.")}
    rest = {k: v for k, v in weights.tensors.items() if not k.startswith("unet.")}
    mid_context = unet.get("mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight")
    token_dim = int(mid_context.shape[1]) if mid_context is not None else PROMPT_TOKEN_DIM
    tensors = {**rest, **{f"unet.{k}": v for k, v in matting_unet_from_sd2(unet, token_dim).items()}}
    metadata = architecture_metadata(tensors, weights.text_heads)
    metadata["origin"] = "SDMatte training initialisation from Stable Diffusion 2"
    _write_verified(tensors, Path(destination), metadata)
    return metadata
