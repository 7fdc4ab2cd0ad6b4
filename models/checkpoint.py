"""Reading matting weights from every layout they are published in, safely.

- ``.safetensors``: read tensor by tensor from the memory map, converted to the requested dtype
  one tensor at a time, so the peak stays near the size of the result.
- ``.pth`` / ``.pt`` / ``.ckpt``: unpickled with ``weights_only=True`` only (detectron2 checkpoints
  keep the weights under ``"model"``); a file that needs arbitrary Python objects is refused.
- A folder laid out like the authors' Hugging Face repos: ``unet/``, ``vae/``, ``text_encoder/``,
  each with its weights file (and a ``config.json``, read only for the text encoder's head count).

Whatever the layout, the result is one flat dict with ``unet.``/``vae.``/``text_encoder.`` keys.
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

from .architecture import COMPONENTS
from .errors import CheckpointError

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
NESTED_STATE_KEYS = ("model", "state_dict", "module")
COMPONENT_WEIGHT_FILES = (
    "diffusion_pytorch_model.safetensors",
    "model.safetensors",
    "diffusion_pytorch_model.bin",
    "pytorch_model.bin",
)


@dataclass
class LoadedWeights:
    tensors: dict[str, torch.Tensor]
    text_heads: int | None = None  # from a folder's text_encoder/config.json, when there is one
    metadata: dict[str, str] = field(default_factory=dict)


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
    """Unpickle tensors only. Uses ComfyUI's safe loader where it is available."""
    try:
        import comfy.utils  # noqa: PLC0415

        return comfy.utils.load_torch_file(str(path), safe_load=True, return_metadata=False)
    except ImportError:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)


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


def _read_pickle(path: Path, dtype: torch.dtype | None, prefix: str = "") -> dict:
    if not _looks_like_torch_file(path):
        raise CheckpointError(f"{path.name} is not a PyTorch checkpoint; it is probably truncated or corrupt: download it again")
    try:
        loaded = _torch_load(path)
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
    state = unwrap_state_dict(loaded, path.name)
    return {prefix + key: _convert(value, dtype) for key, value in state.items()}


def unwrap_state_dict(loaded, name: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The flat tensor dict inside a checkpoint: top level or under "model"/"state_dict", ``module.`` stripped."""
    state = loaded
    while isinstance(state, Mapping):
        nested = next((state[k] for k in NESTED_STATE_KEYS if isinstance(state.get(k), Mapping)), None)
        if nested is None or any(isinstance(v, torch.Tensor) for v in state.values()):
            break
        state = nested
    if not isinstance(state, Mapping) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{name} holds no tensors: it is not a model checkpoint")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def _read_file(path: Path, dtype: torch.dtype | None, prefix: str = "") -> tuple[dict, dict]:
    if path.suffix == ".safetensors":
        return _read_safetensors(path, dtype, prefix)
    if path.suffix in PICKLE_SUFFIXES:
        return _read_pickle(path, dtype, prefix), {}
    raise CheckpointError(
        f"{path.name}: unsupported file type {path.suffix!r}; use .safetensors, .pth, .pt or .ckpt"
    )


def _read_folder(folder: Path, dtype: torch.dtype | None) -> LoadedWeights:
    tensors: dict[str, torch.Tensor] = {}
    for component in COMPONENTS:
        weights = next((folder / component / n for n in COMPONENT_WEIGHT_FILES if (folder / component / n).is_file()), None)
        if weights is None:
            raise CheckpointError(
                f"{folder} looks like a Hugging Face model folder but {component}/ has no weights file "
                f"(expected one of {', '.join(COMPONENT_WEIGHT_FILES)})"
            )
        tensors.update(_read_file(weights, dtype, prefix=component + ".")[0])
    heads = None
    config = folder / "text_encoder" / "config.json"
    if config.is_file():
        heads = json.loads(config.read_text()).get("num_attention_heads")
    return LoadedWeights(tensors, text_heads=heads)


def is_memory_mapped(source) -> bool:
    """Whether ``read_weights(source)`` returns lazy views of a file map (safetensors sources)."""
    if isinstance(source, Mapping):
        return False
    path = Path(os.fspath(source))
    if path.is_dir():
        text_files = [path / "model.safetensors"] + [path / "text_encoder" / n for n in COMPONENT_WEIGHT_FILES[:2]]
        return any(f.is_file() for f in text_files)
    return path.suffix == ".safetensors"


def read_component(source, component: str, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Only ``component``'s tensors (prefix stripped), reading no more of a safetensors file than that."""
    prefix = component + "."
    if not isinstance(source, Mapping):
        path = Path(os.fspath(source))
        if path.is_dir() and (path / component).is_dir():
            weights = next(path / component / n for n in COMPONENT_WEIGHT_FILES if (path / component / n).is_file())
            return _read_file(weights, dtype)[0]
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt", device="cpu") as f:
                return {k[len(prefix) :]: _convert(f.get_tensor(k), dtype) for k in f.keys() if k.startswith(prefix)}
    tensors = read_weights(source, dtype).tensors
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def read_weights(source, dtype: torch.dtype | None = None) -> LoadedWeights:
    """A checkpoint path, folder or state dict -> flat tensors (optionally converted to ``dtype``)."""
    if isinstance(source, Mapping):
        state = unwrap_state_dict(source, "the state dict")
        return LoadedWeights({k: _convert(v, dtype) for k, v in state.items()})
    path = Path(os.fspath(source))
    if path.is_dir():
        if any((path / f).is_file() for f in ("model.safetensors", "model.pth")):
            path = next(path / f for f in ("model.safetensors", "model.pth") if (path / f).is_file())
        else:
            return _read_folder(path, dtype)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    tensors, metadata = _read_file(path, dtype)
    heads = metadata.get("text_encoder_heads")
    return LoadedWeights(tensors, text_heads=int(heads) if heads else None, metadata=metadata)
