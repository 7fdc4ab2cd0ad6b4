"""Fold SEMat's LoRA adapters into the plain weights of SAM's image encoder, once, at load.

SEMat trains its SAM ViT with peft LoRA (rank r = 16, alpha = 16) on every module whose name ends
in ``qkv`` or ``proj``: each block's ``attn.qkv`` and ``attn.proj`` (Linear) and
``patch_embed.proj`` (the 16x16 stride-16 Conv2d). peft computes ``base(x) + (alpha / r) *
B(A(x))``; for a Linear that is ``(W + (alpha / r) * B @ A) x + b``, and for the patch
convolution A is an r-channel 16x16 convolution and B a 1x1 one, so ``B @ A`` over the flattened
kernels is again one 16x16 kernel. Merging makes the encoder a plain SAM encoder at no cost per
image.

Checkpoint names (inside ``sam_model.image_encoder.``): ``base_model.model.<module>.base_layer.weight``
with ``<module>.lora_A.default.weight`` and ``<module>.lora_B.default.weight``; peft before 0.7
kept the base weight as ``<module>.weight`` (no ``base_layer``); adapters without the ``default``
adapter name are accepted too.
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

from ..errors import CheckpointError

# configs/SEMat_*.py: lora_alpha = 16. The rank is read from the tensors (lora_A's rows); alpha is
# not stored in the checkpoint, so it is the authors' configured value.
LORA_ALPHA = 16.0

PEFT_WRAPPER = "base_model.model."
_ADAPTER = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])(?:\.default)?\.weight$")


def strip_peft_names(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Names as peft wrote them -> module names (``base_model.model.`` and ``base_layer.`` removed).

    LoRA tensors keep their ``<module>.lora_A`` / ``<module>.lora_B`` names (``.default`` removed).
    """
    renamed: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        name = key[len(PEFT_WRAPPER) :] if key.startswith(PEFT_WRAPPER) else key
        name = name.replace(".base_layer.", ".")
        match = _ADAPTER.match(name)
        if match:
            name = f"{match['module']}.lora_{match['which']}"
        if name in renamed:
            raise CheckpointError(f"the image encoder holds two tensors for {name}: is this a merged and an unmerged LoRA at once?")
        renamed[name] = value
    return renamed


def lora_delta(lora_a: torch.Tensor, lora_b: torch.Tensor, weight_shape: torch.Size, alpha: float = LORA_ALPHA) -> torch.Tensor:
    """(alpha / r) * B @ A in the shape of the base weight, float32.

    lora_a: (r, in) for a Linear, (r, in, k, k) for a Conv2d; lora_b: (out, r) or (out, r, 1, 1).
    """
    rank = lora_a.shape[0]
    a = lora_a.reshape(rank, -1).float()
    b = lora_b.reshape(lora_b.shape[0], -1).float()
    if b.shape[1] != rank or b.shape[0] * a.shape[1] != torch.Size(weight_shape).numel():
        raise CheckpointError(
            f"LoRA factors of shapes {tuple(lora_a.shape)} and {tuple(lora_b.shape)} do not fit a weight of "
            f"shape {tuple(weight_shape)}: the checkpoint is damaged or from another model"
        )
    return ((alpha / rank) * (b @ a)).reshape(weight_shape)


def merge_lora(tensors: Mapping[str, torch.Tensor], alpha: float = LORA_ALPHA) -> dict[str, torch.Tensor]:
    """Module names -> tensors with every ``<module>.lora_A`` / ``lora_B`` pair added into ``<module>.weight``.

    ``tensors`` as returned by ``strip_peft_names``. The merged weight keeps the base weight's dtype
    (the sum is taken in float32).
    """
    merged = {k: v for k, v in tensors.items() if not k.endswith((".lora_A", ".lora_B"))}
    modules = {k[: -len(".lora_A")] for k in tensors if k.endswith(".lora_A")}
    modules |= {k[: -len(".lora_B")] for k in tensors if k.endswith(".lora_B")}
    for module in sorted(modules):
        a, b = tensors.get(module + ".lora_A"), tensors.get(module + ".lora_B")
        base = tensors.get(module + ".weight")
        if a is None or b is None or base is None:
            missing = [n for n, t in (("lora_A", a), ("lora_B", b), ("weight", base)) if t is None]
            raise CheckpointError(f"the LoRA adapter of {module} is incomplete ({', '.join(missing)} missing): the checkpoint is damaged")
        merged[module + ".weight"] = (base.float() + lora_delta(a, b, base.shape, alpha)).to(base.dtype)
    return merged
