"""Folding the authors' spectral normalisation into plain convolution weights.

MAM's M2M convolutions are wrapped in a ``SpectralNorm`` module (``networks/ops.py``) that stores
``weight_bar`` (the raw weight) and the power-iteration vectors ``weight_u`` (out,) and
``weight_v`` (in * kh * kw,), and computes the weight at every call. In eval mode it runs no
power iteration (``_noupdate_u_v``): the weight is ``weight_bar / sigma`` with
``sigma = u . (weight_bar.view(out, -1) @ v)`` from the stored vectors, so it is a constant of the
checkpoint and can be computed once at load. "out" is the weight's first dimension, which for a
transposed convolution is its input channels: the authors' code flattens dim 0 either way.
"""

from __future__ import annotations

from typing import Mapping

import torch

from ..errors import CheckpointError

SUFFIXES = ("module.weight_bar", "module.weight_u", "module.weight_v")


def spectral_sigma(weight_bar: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The scalar the eval-mode ``SpectralNorm`` divides by: u . (W.view(rows, -1) v), in float32."""
    rows = weight_bar.shape[0]
    w = weight_bar.float().reshape(rows, -1)
    return torch.dot(u.float(), torch.mv(w, v.float()))


def fold_spectral_norm(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``<name>.module.weight_bar/_u/_v`` -> ``<name>.weight`` = weight_bar / sigma; the rest unchanged.

    Raises ``CheckpointError`` when a triple is incomplete or misshapen.
    """
    folded: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if not key.endswith(SUFFIXES):
            folded[key] = value
            continue
        if not key.endswith("module.weight_bar"):
            continue  # read with their weight_bar
        prefix = key[: -len("module.weight_bar")]
        u, v = tensors.get(prefix + "module.weight_u"), tensors.get(prefix + "module.weight_v")
        if u is None or v is None:
            raise CheckpointError(f"the spectral-norm weight {key} has no matching weight_u / weight_v")
        rows, columns = value.shape[0], value[0].numel()
        if tuple(u.shape) != (rows,) or tuple(v.shape) != (columns,):
            raise CheckpointError(
                f"the spectral-norm vectors of {key} {tuple(value.shape)} are misshapen: "
                f"weight_u {tuple(u.shape)}, weight_v {tuple(v.shape)} (expected ({rows},), ({columns},))"
            )
        sigma = spectral_sigma(value, u, v)
        folded[prefix + "weight"] = (value.float() / sigma).to(value.dtype)
    return folded
