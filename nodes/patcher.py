"""The matting network as a ComfyUI-managed model: a ModelPatcher around it, its precision, residency.

Memory management is ComfyUI's: the network sits on the offload device until a matting node calls
``comfy.model_management.load_models_gpu`` (see ``make_resident``), which moves it to the torch
device (honouring ``--cpu``, ``--lowvram``, ``--novram``) and unloads it again when other models
need room or when the UI asks to "Unload models" (POST /free).

One copy per file: a weak-valued cache keyed by (real path, mtime, size, precision). It never
keeps a model alive on its own, so once ComfyUI drops the node output (e.g. "Free model and node
cache") the weights are really released.
"""

from __future__ import annotations

import os
import threading
import weakref

import torch

import comfy.model_management as mm
import comfy.model_patcher
import comfy.ops

PRECISIONS = ["auto", "fp32", "fp16", "bf16"]
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

_cache: "weakref.WeakValueDictionary[tuple, comfy.model_patcher.ModelPatcher]" = weakref.WeakValueDictionary()
_cache_lock = threading.Lock()


# Working memory of one 1024² pass of SD2-sized SDMatte on top of its weights (activations of the
# banded autoencoder and the UNet, see MattingModel.inference_memory_bytes), with room to spare.
FP32_WORKING_BYTES = 3 << 30


def pick_dtype(precision: str, device: torch.device, fp32_weight_bytes: int | None = None) -> torch.dtype:
    """The UNet's precision. ``auto`` follows the measured evidence (README, "Precision"):

    fp32, as the authors run it, wherever it fits: always on the CPU, and on a GPU whose memory
    holds the fp32 weights (``fp32_weight_bytes``: UNet and autoencoder) plus a 1024² pass.
    Otherwise fp16, which moved the golden mattes 9x less than bf16 (max-abs 8e-3 vs 7e-2), and
    bf16 only where fp16 is not supported. ComfyUI's --fp32-unet / --fp16-unet / --bf16-unet win.
    """
    if precision in _DTYPES:
        return _DTYPES[precision]
    if precision != "auto":
        raise ValueError(f"Unknown precision '{precision}': use one of {', '.join(PRECISIONS)}.")
    if mm.is_device_cpu(device):
        return torch.float32
    from comfy.cli_args import args  # noqa: PLC0415

    for flag, dtype in (("fp32_unet", torch.float32), ("fp16_unet", torch.float16), ("bf16_unet", torch.bfloat16)):
        if getattr(args, flag, False):
            return dtype
    if fp32_weight_bytes is not None and mm.get_total_memory(device) >= fp32_weight_bytes + FP32_WORKING_BYTES:
        return torch.float32
    if mm.should_use_fp16(device, prioritize_performance=False):
        return torch.float16
    if mm.should_use_bf16(device, prioritize_performance=False):
        return torch.bfloat16
    return torch.float32


# ComfyUI streams weights of modules that carry `comfy_cast_weights` when a model only partly fits
# (--lowvram / --novram / low free VRAM). Giving the plain torch layers of the network the
# equivalent comfy.ops classes (same parameters, same maths when nothing is offloaded) lets the
# ModelPatcher load it partially instead of failing on weights left on the offload device.
_STREAMABLE = {
    torch.nn.Linear: comfy.ops.disable_weight_init.Linear,
    torch.nn.Conv1d: comfy.ops.disable_weight_init.Conv1d,
    torch.nn.Conv2d: comfy.ops.disable_weight_init.Conv2d,
    torch.nn.Conv3d: comfy.ops.disable_weight_init.Conv3d,
    torch.nn.ConvTranspose2d: comfy.ops.disable_weight_init.ConvTranspose2d,
    torch.nn.GroupNorm: comfy.ops.disable_weight_init.GroupNorm,
    torch.nn.LayerNorm: comfy.ops.disable_weight_init.LayerNorm,
    torch.nn.Embedding: comfy.ops.disable_weight_init.Embedding,
}


def make_streamable(module: torch.nn.Module) -> int:
    """Swap exact torch layer classes for their comfy.ops twins; returns how many were swapped."""
    n = 0
    for m in module.modules():
        twin = _STREAMABLE.get(type(m))
        if twin is not None and getattr(m, "weight", None) is not None:
            m.__class__ = twin
            n += 1
    return n


class MattingModule(torch.nn.Module):
    """What the ModelPatcher holds when the network's ``device`` is read-only (ModelPatcher writes
    ``model.device``); the network is ``.net`` (use ``network(patcher)`` to get it either way)."""

    def __init__(self, net: torch.nn.Module, device: torch.device):
        super().__init__()
        self.net = net
        self.device = device


def network(patcher) -> torch.nn.Module:
    """The matting network inside a PROMPTMATTE_MODEL."""
    m = patcher.model
    return m.net if isinstance(m, MattingModule) else m


def _settable_device(model: torch.nn.Module) -> bool:
    attr = getattr(type(model), "device", None)
    return not isinstance(attr, property) or attr.fset is not None


def _fp32_weight_bytes(path: str) -> int | None:
    """Size in fp32 of what goes to the GPU (UNet and autoencoder), from the file's tensor shapes."""
    if mm.is_device_cpu(mm.get_torch_device()):
        return None  # auto is fp32 on the CPU anyway: no need to look into the file
    from ..models.checkpoint import read_weights
    from ..models.sdmatte.architecture import select_model_tensors  # noqa: PLC0415

    try:
        tensors, _ = select_model_tensors(read_weights(path).tensors)  # lazy views: nothing is read
    except Exception:  # noqa: BLE001  (a bad file is reported by the loader itself, just below)
        return None
    return sum(t.numel() * 4 for k, t in tensors.items() if not k.startswith("text_encoder."))


def load_patcher(path: str, precision: str = "auto", find_companion=None, companion_key=None):
    """Load (or share the already loaded copy of) ``path`` wrapped in a ModelPatcher.

    ``find_companion``: see ``load_matting_model`` (families with a second weights file);
    ``companion_key``: what identifies the companion choice in the cache (e.g. the chosen name).
    """
    st = os.stat(path)
    load_device = mm.get_torch_device()
    offload_device = mm.unet_offload_device()
    dtype = pick_dtype(precision, load_device, _fp32_weight_bytes(path) if precision == "auto" else None)
    # "auto" and the precision it resolves to share one copy
    key = (os.path.realpath(path), st.st_mtime_ns, st.st_size, dtype, companion_key)
    with _cache_lock:
        patcher = _cache.get(key)
        if patcher is not None:
            return patcher
        # The engine (and diffusers, transformers) is imported when a model is first loaded, not when
        # ComfyUI starts: startup stays fast for every user of the pack, whether they matte or not.
        from ..models import load_matting_model  # noqa: PLC0415

        # CheckpointError (incl. a missing companion file) → UI
        net = load_matting_model(path, device=offload_device, dtype=dtype, find_companion=find_companion)
        net.eval().requires_grad_(False)
        make_streamable(net)
        model = net if _settable_device(net) else MattingModule(net, offload_device)
        patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)
        _cache[key] = patcher
        return patcher


def make_resident(patcher, memory_required: int) -> None:
    """Ask ComfyUI to put the model on its device, freeing room for ``memory_required`` more bytes
    of activations (it unloads or offloads other models as needed).

    After a partial (low-VRAM) load the streamed layers keep their weights on the offload device
    and cast them per call; what cannot be streamed (buffers, layers with other parameters) and
    the layer whose weight tells the network its device (``unet.conv_in``: inputs go where it is)
    are small, so they are moved to the load device for every forward to run there."""
    mm.load_models_gpu([patcher], memory_required=int(memory_required))
    model = patcher.model
    if not getattr(model, "model_lowvram", False):
        return
    dev = patcher.load_device
    streamed = tuple(_STREAMABLE.values())
    for m in model.modules():
        for name, buf in m._buffers.items():
            if buf is not None and buf.device != dev:
                m._buffers[name] = buf.to(dev)
        if isinstance(m, streamed):
            continue
        for name, p in m._parameters.items():
            if p is not None and p.device != dev:
                m._parameters[name] = torch.nn.Parameter(p.data.to(dev), requires_grad=False)
    anchor = getattr(getattr(network(patcher), "unet", None), "conv_in", None)
    if isinstance(anchor, torch.nn.Module):
        anchor.to(dev)
