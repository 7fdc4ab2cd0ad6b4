"""One golden case as model arguments: ``cases.npz`` of a golden fixture folder -> (args, expected alpha)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

KIND_OF_CASE = {"point_mask": "point", "bbox_mask": "box", "mask": "mask", "trimap": "trimap", "auto_mask": "auto"}


def golden_case(folder: Path, case: str = "bbox_mask.trans0") -> tuple[tuple, torch.Tensor]:
    """``case`` is ``<kind>.<flag>`` as in cases.npz, e.g. ``point_mask.trans1``.

    Returns ((image, prompt_map, coords, kind, transparent) for a batch of one, alpha (H, W)).
    """
    cases = np.load(Path(folder) / "cases.npz")
    name, flag = case.split(".")
    args = (
        torch.from_numpy(cases["image"])[None],
        torch.from_numpy(cases[f"{case}.map"])[None, None],
        torch.from_numpy(cases[f"{case}.coords"])[None],
        KIND_OF_CASE[name],
        torch.tensor([flag == "trans1"]),
    )
    return args, torch.from_numpy(cases[f"{case}.alpha"])
