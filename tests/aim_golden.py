"""AIM's golden checkpoint rebuilt from tests/golden/aim/manifest.json by the README's fill rule (the
same as tools/make_aim_golden.py), in the released layout ({'state_dict'}, shared modules twice)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch

GOLDEN = Path(__file__).resolve().parent / "golden" / "aim"


def _fill(manifest: dict) -> dict[str, torch.Tensor]:
    """The fill rule of tests/golden/aim/README.md (the same as tools/make_aim_golden.py)."""
    generator = torch.Generator().manual_seed(manifest["seed"])
    entries = manifest["tensors"]
    state: dict[str, torch.Tensor] = {}
    for key in sorted(k for k, e in entries.items() if e.get("alias_of") is None):
        shape = tuple(entries[key]["shape"])
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros(shape, dtype=torch.int64)
        elif key.endswith("running_mean"):
            state[key] = 0.1 * torch.randn(shape, generator=generator)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif len(shape) == 1 and key.endswith("weight"):
            state[key] = 1 + 0.1 * torch.randn(shape, generator=generator)
        elif len(shape) == 1:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
        else:
            state[key] = torch.randn(shape, generator=generator) * math.sqrt(2.0 / math.prod(shape[1:]))
    for key, entry in entries.items():
        if entry.get("alias_of") is not None:
            state[key] = state[entry["alias_of"]]
    return {key: state[key] for key in entries}


def _digest(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].contiguous().numpy().tobytes())
    return digest.hexdigest()


def write_checkpoint(path: Path) -> Path:
    """The reduced checkpoint written to ``path``."""
    manifest = json.loads((GOLDEN / "manifest.json").read_text())
    torch.save({"state_dict": _fill(manifest)}, path)
    return Path(path)
