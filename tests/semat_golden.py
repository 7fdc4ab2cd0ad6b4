"""Rebuild the SEMat golden fixture's checkpoints from tests/golden/semat/manifest_<variant>.json.

The reduced SEMat's random weights (8 M parameters: the mask decoder and prompt encoder are full
size) are larger than the fixture budget, so the fixture keeps a manifest (key, shape, dtype in
the file's order) and this rule, which tools/make_semat_golden.py applies to the authors' model
before running it:

- tensor number ``i`` in sorted key order gets ``torch.Generator().manual_seed(seed + i)``;
- integer tensors (batch-norm step counters): zeros;
- ``*running_var``: 0.5 + rand; other tensors of 2 or more dimensions: randn / sqrt(prod(shape[1:]));
- 1-D ``*.weight``: 1 + 0.1 randn; other 1-D tensors (biases, running means): 0.1 randn.

The file is what detectron2's checkpointer writes: ``{"model": state, "trainer": {...},
"iteration": n}`` (the manifest's ``layout``), with peft's key names.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "int64": torch.int64}


def fill_tensor(key: str, shape, dtype: torch.dtype, index: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed + index)
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    if key.endswith("running_var"):
        values = 0.5 + torch.rand(shape, generator=generator)
    elif len(shape) >= 2:
        values = torch.randn(shape, generator=generator) / math.sqrt(math.prod(shape[1:]))
    elif key.endswith(".weight"):
        values = 1.0 + 0.1 * torch.randn(shape, generator=generator)
    else:
        values = 0.1 * torch.randn(shape, generator=generator)
    return values.to(dtype)


def build_state(manifest: dict) -> dict[str, torch.Tensor]:
    entries = manifest["tensors"]
    order = {key: index for index, key in enumerate(sorted(key for key, _, _ in entries))}
    return {key: fill_tensor(key, tuple(shape), DTYPES[dtype], order[key], manifest["fill_seed"]) for key, shape, dtype in entries}


def write_checkpoint(manifest_path: Path, path: Path) -> Path:
    """The checkpoint of ``manifest_path`` written to ``path`` (detectron2's layout)."""
    manifest = json.loads(Path(manifest_path).read_text())
    payload = dict(manifest["layout"])
    payload["model"] = build_state(manifest)
    torch.save(payload, path)
    return path
