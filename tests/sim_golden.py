"""SIM's golden weight files rebuilt from tests/golden/sim/manifest.json by the README's fill rule
(the same as tools/make_sim_golden.py), in the released files' names and layouts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

GOLDEN = Path(__file__).resolve().parent / "golden" / "sim"
MATTING_FILE, CLASSIFIER_FILE = "ckpt_best.pth", "classifier_resnet50_best.pth.tar"


def _standardised_fan_in(shapes: dict, key: str) -> int:
    module, _, _ = key.rpartition(".")
    parent, _, index = module.rpartition(".")
    conv = f"{parent}.{int(index) - 1}.weight" if index.isdigit() else ""
    if key.startswith("decoder.") and conv in shapes and len(shapes[conv]) == 4:
        return math.prod(shapes[conv][1:])
    return 1


def _fill(tensors: dict, seed: int) -> dict[str, torch.Tensor]:
    """The fill rule of tests/golden/sim/README.md (same as tools/make_sim_golden.py)."""
    shapes = {key: tuple(entry["shape"]) for key, entry in tensors.items()}
    out = {}
    for index, key in enumerate(sorted(tensors)):
        shape, dtype = shapes[key], tensors[key]["dtype"]
        generator = torch.Generator().manual_seed(seed * 100000 + index)
        if not dtype.startswith("torch.float"):
            out[key] = torch.zeros(shape, dtype=getattr(torch, dtype.split(".")[1]))
        elif key.endswith("running_var"):
            out[key] = (0.5 + torch.rand(shape, generator=generator)) * _standardised_fan_in(shapes, key)
        elif key.endswith("running_mean"):
            out[key] = 0.1 * torch.randn(shape, generator=generator)
        elif len(shape) == 1 and key.endswith("weight"):
            out[key] = 1 + 0.1 * torch.randn(shape, generator=generator)
        elif key.endswith("bias"):
            out[key] = 0.1 * torch.randn(shape, generator=generator)
        else:
            out[key] = torch.randn(shape, generator=generator) * math.sqrt(2.0 / math.prod(shape[1:]))
    return out



def write_checkpoints(folder: Path) -> dict[str, tuple[dict[str, torch.Tensor], dict[str, float]]]:
    """Both files written into ``folder``; file name -> (its state, the manifest's sum per tensor)."""
    manifest = json.loads((GOLDEN / "manifest.json").read_text())
    written = {}
    for name in (MATTING_FILE, CLASSIFIER_FILE):
        entry = manifest[name]
        state = _fill(entry["tensors"], entry["seed"])
        prefix = entry["state_dict_prefix"]
        torch.save({**entry["entries"], "state_dict": {prefix + k: v for k, v in state.items()}}, Path(folder) / name)
        written[name] = (state, {key: value["sum"] for key, value in entry["tensors"].items()})
    return written
