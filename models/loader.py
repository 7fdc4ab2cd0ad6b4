"""``load_matting_model``: any supported weights file -> the ready model of its family.

The file is read once (lazily, from a memory map when the format allows); its tensor names and
shapes say which family it belongs to (``registry``), and that family builds the model.
"""

from __future__ import annotations

import os
from typing import Mapping

import torch

from .checkpoint import read_weights
from .family import FindCompanion
from .registry import recognise

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def source_name(source) -> str:
    return "the state dict" if isinstance(source, Mapping) else os.path.basename(os.fspath(source).rstrip("/\\"))


def load_matting_model(
    source,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    *,
    find_companion: FindCompanion | None = None,
) -> torch.nn.Module:
    """Load a matting model of any family PromptMatte runs.

    source: a checkpoint path (``.safetensors``, ``.pth``/``.pt``/``.ckpt``/``.pth.tar``), a folder
        in the SDMatte authors' Hugging Face layout, or an already loaded state dict.
    device: where the model computes (default CPU).
    dtype: float32 (default), float16 or bfloat16 for the family's main weights (each family
        keeps in float32 what must stay exact, e.g. SDMatte's autoencoder).
    find_companion: for families with a second weights file (MAM: a SAM checkpoint; SIM: its
        classifier), a function that returns that file's path or None (see ``family.Companion``).

    Returns the family's model (see ``family``: ``family``, ``prompt_kinds``, the common
    ``forward``). Tensors that are not part of the model are skipped with one log line; files of
    no known family, missing companions and missing or misshapen tensors are ``CheckpointError``s.
    """
    if dtype is not None and dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"dtype must be one of float32, float16, bfloat16, got {dtype}")
    name = source_name(source)
    weights = read_weights(source)  # as stored: each family casts what it keeps
    family = recognise({key: tuple(t.shape) for key, t in weights.tensors.items()}, name)
    return family.load(
        weights, source=source, source_name=name, device=device, dtype=dtype, find_companion=find_companion
    )
