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


# An fp32 result agrees with the authors' to about 1e-6, but several families decide per pixel
# (AIM's trimap from the semantic argmax and its exact 0 / 255 checks, MAM's fusion thresholds on
# OS8 and OS4): a pixel whose value sits on such an edge can land on the other side on another CPU
# (AVX-512 against AVX2 convolution kernels, another LAPACK kernel in the resize's SVD), as the
# authors' own code would there. So: every pixel within the tolerance, except at most this share
# of pixels (a handful in a 100x100 case), which are decision flips.
DECISION_FLIP_SHARE = 1e-3


def assert_close_to_authors(ours, expected, tolerance: float, what: str = "alpha") -> None:
    """``ours`` matches the authors' ``expected`` to ``tolerance`` but for rare decision flips."""
    ours = np.asarray(ours, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert ours.shape == expected.shape, f"{what}: shape {ours.shape}, the authors' {expected.shape}"
    off = np.abs(ours - expected) > tolerance
    allowed = max(1, int(DECISION_FLIP_SHARE * off.size))
    worst = float(np.abs(ours - expected).max())
    assert int(off.sum()) <= allowed, (
        f"{what}: {int(off.sum())} of {off.size} values beyond {tolerance:g} (max-abs {worst:.2e}); "
        f"at most {allowed} decision flips are expected")
