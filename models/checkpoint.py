"""Reading matting weights from every layout they are published in, safely.

- ``.safetensors``: read tensor by tensor from the memory map, converted to the requested dtype
  one tensor at a time, so the peak stays near the size of the result.
- ``.pth`` / ``.pt`` / ``.ckpt``: unpickled with ``weights_only=True`` only (detectron2 checkpoints
  keep the weights under ``"model"``, beside the optimizer and scheduler state); a file that needs
  arbitrary Python objects is refused. Files in torch's zip format (every ``torch.save`` since
  1.6) are memory-mapped, inside ComfyUI too: tensors nobody uses (an optimizer's state, often
  twice the model) are never read, and the model's pages are read when first used. Only the
  legacy pickle-stream format is read into memory whole.
- A folder laid out like the authors' Hugging Face repos: ``unet/``, ``vae/``, ``text_encoder/``,
  each with its weights file (and a ``config.json``, read only for the text encoder's head count).

Whatever the layout, the result is one flat dict of tensors (for SDMatte: ``unet.``/``vae.``/
``text_encoder.`` keys); each family then picks its model's tensors and names the rest in one
log line (``describe_skipped``).
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from safetensors import SafetensorError, safe_open

from .errors import CheckpointError

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
PICKLE_ARCHIVE_SUFFIXES = (".pth.tar",)  # torch.save output under a tar-like name (SIM's classifier)
NESTED_STATE_KEYS = ("model", "state_dict", "module")
COMPONENT_WEIGHT_FILES = (
    "diffusion_pytorch_model.safetensors",
    "model.safetensors",
    "diffusion_pytorch_model.bin",
    "pytorch_model.bin",
)


# The component folders of the SDMatte authors' Hugging Face layout, which is a file layout too.
COMPONENTS = ("unet", "vae", "text_encoder")


@dataclass
class LoadedWeights:
    tensors: dict[str, torch.Tensor]
    text_heads: int | None = None  # from a folder's text_encoder/config.json, when there is one
    metadata: dict[str, str] = field(default_factory=dict)
    # Tensors are lazy views of a file map (pages read when used): safetensors, zip-format torch files.
    memory_mapped: bool = False
    # Top-level checkpoint entries beside the weights (detectron2: optimizer, scheduler, iteration).
    other_entries: tuple[str, ...] = ()


def _convert(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
        return tensor.to(dtype)
    return tensor


def _read_safetensors(path: Path, dtype: torch.dtype | None, prefix: str = "") -> tuple[dict, dict]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {prefix + key: _convert(f.get_tensor(key), dtype) for key in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{path.name} is not a readable safetensors file ({error}); it is probably truncated or "
            "corrupt: download it again"
        ) from None
    return tensors, metadata


def _torch_load(path: Path):
    """Unpickle tensors only; memory-mapped when the file is in torch's zip format.

    Not ``comfy.utils.load_torch_file``: it maps files only under ``--mmap-torch-files`` and would
    otherwise read a training checkpoint's optimizer state (twice the model) into memory.
    """
    mappable = zipfile.is_zipfile(path)
    return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mappable), mappable


def _looks_like_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive (PK..) or, in its legacy format, a pickle stream (0x80, protocol 2-5)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _corrupt(path: Path, error: Exception | None = None) -> CheckpointError:
    detail = f" ({str(error).splitlines()[0]})" if error is not None else ""
    return CheckpointError(
        f"{path.name} could not be read as a PyTorch checkpoint{detail}; it is probably truncated or corrupt: "
        "download it again"
    )


def _read_pickle(path: Path, dtype: torch.dtype | None, prefix: str = "") -> LoadedWeights:
    if not _looks_like_torch_file(path):
        raise CheckpointError(f"{path.name} is not a PyTorch checkpoint; it is probably truncated or corrupt: download it again")
    try:
        loaded, mapped = _torch_load(path)
    except pickle.UnpicklingError as error:
        if "global" in str(error).lower():  # the safe unpickler refused an object, the file is readable
            raise CheckpointError(
                f"{path.name} holds pickled Python objects other than tensors, which are refused because "
                f"unpickling them can run code ({str(error).splitlines()[0]}). Use a .safetensors file, "
                "or convert a checkpoint you trust with: python -m <pack>.models convert"
            ) from None
        raise _corrupt(path) from None  # (torch's text would suggest weights_only=False: not for garbage)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError) as error:
        raise _corrupt(path, error) from None
    state, other_entries = _unwrap(loaded, path.name)
    tensors = {prefix + key: _convert(value, dtype) for key, value in state.items()}
    return LoadedWeights(tensors, memory_mapped=mapped, other_entries=other_entries)


def _unwrap(loaded, name: str) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """(flat tensors, names of the top-level entries left beside them); see ``unwrap_state_dict``."""
    state, other_entries = loaded, []
    while isinstance(state, Mapping):
        key = next((k for k in NESTED_STATE_KEYS if isinstance(state.get(k), Mapping)), None)
        if key is None or any(isinstance(v, torch.Tensor) for v in state.values()):
            break
        other_entries += [str(k) for k in state if k != key]
        state = state[key]
    if not isinstance(state, Mapping) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{name} holds no tensors: it is not a model checkpoint")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return _strip_wrapper_prefix(tensors), tuple(other_entries)


def _strip_wrapper_prefix(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``<wrapper>.unet.*`` -> ``unet.*`` when a file nests the whole model under one attribute."""
    if any(k.split(".", 1)[0] in COMPONENTS for k in tensors):
        return tensors
    wrappers = {k.split(".", 1)[0] for k in tensors if k.count(".") >= 2 and k.split(".", 2)[1] == "unet"}
    if len(wrappers) != 1:
        return tensors
    prefix = wrappers.pop() + "."
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in tensors.items()}


def unwrap_state_dict(loaded, name: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The flat tensor dict inside a checkpoint: top level or under "model"/"state_dict", ``module.`` stripped."""
    return _unwrap(loaded, name)[0]


def describe_skipped(skipped: Mapping[str, int], other_entries: tuple[str, ...] = ()) -> str:
    """'optimizer, iteration (entries beside the weights); ema.* (1200 tensors); ...' for one log line."""
    parts = []
    if other_entries:
        parts.append(f"{', '.join(other_entries)} (entries beside the weights)")
    parts += [f"{name} ({count} tensor{'s' if count != 1 else ''})" for name, count in sorted(skipped.items())]
    return "; ".join(parts)


def _read_file(path: Path, dtype: torch.dtype | None, prefix: str = "") -> LoadedWeights:
    if path.suffix == ".safetensors":
        tensors, metadata = _read_safetensors(path, dtype, prefix)
        heads = metadata.get("text_encoder_heads")
        return LoadedWeights(tensors, int(heads) if heads else None, metadata, memory_mapped=True)
    if path.suffix in PICKLE_SUFFIXES or path.name.endswith(PICKLE_ARCHIVE_SUFFIXES):
        return _read_pickle(path, dtype, prefix)
    raise CheckpointError(
        f"{path.name}: unsupported file type {path.suffix!r}; use .safetensors, .pth, .pth.tar, .pt or .ckpt"
    )


def _read_folder(folder: Path, dtype: torch.dtype | None) -> LoadedWeights:
    tensors: dict[str, torch.Tensor] = {}
    mapped = True
    for component in COMPONENTS:
        weights = next((folder / component / n for n in COMPONENT_WEIGHT_FILES if (folder / component / n).is_file()), None)
        if weights is None:
            raise CheckpointError(
                f"{folder} looks like a Hugging Face model folder but {component}/ has no weights file "
                f"(expected one of {', '.join(COMPONENT_WEIGHT_FILES)})"
            )
        part = _read_file(weights, dtype, prefix=component + ".")
        tensors.update(part.tensors)
        mapped = mapped and part.memory_mapped
    heads = None
    config = folder / "text_encoder" / "config.json"
    if config.is_file():
        heads = json.loads(config.read_text()).get("num_attention_heads")
    return LoadedWeights(tensors, text_heads=heads, memory_mapped=mapped)


def read_weights(source, dtype: torch.dtype | None = None) -> LoadedWeights:
    """A checkpoint path, folder or state dict -> flat tensors (converted to ``dtype`` when given).

    Without ``dtype`` nothing is converted: from a memory-mapped file the tensors stay lazy views.
    """
    if isinstance(source, Mapping):
        state, other_entries = _unwrap(source, "the state dict")
        return LoadedWeights({k: _convert(v, dtype) for k, v in state.items()}, other_entries=other_entries)
    path = Path(os.fspath(source))
    if path.is_dir():
        if any((path / f).is_file() for f in ("model.safetensors", "model.pth")):
            path = next(path / f for f in ("model.safetensors", "model.pth") if (path / f).is_file())
        else:
            return _read_folder(path, dtype)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return _read_file(path, dtype)
