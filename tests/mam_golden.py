"""Rebuild the MAM golden fixture's checkpoints from tests/golden/mam/weights_manifest.json.

The random weights of the reduced MAM (a tiny SAM and a narrow-depth Mask-to-Matte module) are
larger than the fixture budget, so the fixture keeps a manifest instead of the files, and the
generator (tools/make_mam_golden.py) and the tests both rebuild the identical files from it:

- one ``torch.Generator`` seeded with ``manifest["seed"]`` per file;
- tensors filled in the manifest's order (sorted key order; the optimizer's moments after the
  model's tensors), each as its fill says: ``["normal", mean, std]`` -> mean + std * randn,
  ``["uniform", low, high]`` -> low + (high - low) * rand, ``["unit"]`` -> randn / its L2 norm,
  ``["const", value]`` -> that value;
- the SAM file is a flat state dict (the official ``sam_vit_b_01ec64.pth`` layout); the MAM file
  is what the authors' trainer saves: ``{"iter", "loss", "state_dict", "opt_state_dict",
  "lr_state_dict"}`` with the Mask-to-Matte module's own keys (spectral-norm ``*_bar/_u/_v``).

Only torch is used: the generator loads this file by path in the authors' environment.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "int64": torch.int64}


def _fill(generator: torch.Generator, shape: list[int], dtype: str, fill: list) -> torch.Tensor:
    kind = fill[0]
    if kind == "const":
        return torch.full(shape, fill[1], dtype=DTYPES[dtype])
    if kind == "normal":
        values = fill[1] + fill[2] * torch.randn(shape, generator=generator, dtype=torch.float32)
    elif kind == "uniform":
        values = fill[1] + (fill[2] - fill[1]) * torch.rand(shape, generator=generator, dtype=torch.float32)
    elif kind == "unit":
        values = torch.randn(shape, generator=generator, dtype=torch.float32)
        values = values / values.norm()
    else:
        raise ValueError(f"unknown fill {fill!r}")
    return values.to(DTYPES[dtype])


def _tensors(entries: list, generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {key: _fill(generator, shape, dtype, fill) for key, shape, dtype, fill in entries}


def build_checkpoints(manifest: dict) -> dict[str, object]:
    """file name -> the object to ``torch.save`` (the SAM state dict, the MAM training checkpoint)."""
    files = {}
    for name, spec in manifest["files"].items():
        generator = torch.Generator().manual_seed(manifest["seed"])
        tensors = _tensors(spec["tensors"], generator)
        if spec["layout"] == "flat":
            files[name] = tensors
            continue
        # The authors' trainer: Adam over the whole generator (M2M first, then SAM), with moments
        # only for the M2M parameters that received gradients; a cosine schedule's state.
        state = {}
        for index, shape in spec["optimizer_params"]:
            state[index] = {
                "step": torch.tensor(float(spec["iter"])),
                "exp_avg": _fill(generator, shape, "float32", ["normal", 0.0, 1e-4]),
                "exp_avg_sq": _fill(generator, shape, "float32", ["uniform", 0.0, 1e-6]),
            }
        group = dict(spec["optimizer_group"], params=list(range(spec["parameter_count"])))
        files[name] = {
            "iter": spec["iter"],
            "loss": spec["loss"],
            "state_dict": tensors,
            "opt_state_dict": {"state": state, "param_groups": [group]},
            "lr_state_dict": spec["lr_state"],
        }
    return files


def write_checkpoints(manifest_path: Path, folder: Path) -> dict[str, Path]:
    """Rebuild every file of the manifest into ``folder``; file name -> path."""
    manifest = json.loads(Path(manifest_path).read_text())
    paths = {}
    for name, payload in build_checkpoints(manifest).items():
        paths[name] = Path(folder) / name
        torch.save(payload, paths[name])
    return paths
