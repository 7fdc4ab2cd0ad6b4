"""Encoder results kept for pixels seen again: a new prompt on the same image skips its encoding.

Interactive matting asks the same image again and again with new clicks, and one image with
several prompts is one model call per prompt. Each call would otherwise encode the same image
again: SDMatte's autoencoder (about a fifth of a pass at 1024², and the same prompt map on a new
image is encoded only once too), Segment Anything's image encoder in MAM (most of its pass).
Entries are keyed by the exact bytes of one sample, so a hit returns what encoding those pixels
gives; results stay the same to the last bit. The owning model empties its store when its
weights, device or dtype change.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Callable

import torch

# Latents of SD2's autoencoder are (4, H/8, W/8): 256 KB for a 1024² sample in float32; SAM's
# image embedding is (256, 64, 64): 4 MB.
DEFAULT_CAPACITY = 8


class EncodingCache:
    """Least-recently-used store of per-sample encoder outputs."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        self.capacity = capacity
        self._entries: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def encode(self, pixels: torch.Tensor, encoder: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``encoder(pixels)`` for a (B, C, H, W) batch, encoding only the samples not seen recently."""
        if self.capacity <= 0 or pixels.device.type == "meta":
            return encoder(pixels)
        keys = [_key(sample) for sample in pixels]
        latents = [self._entries.get(key) for key in keys]
        missing = [i for i, latent in enumerate(latents) if latent is None]
        if missing:
            fresh = encoder(pixels if len(missing) == len(keys) else pixels[missing])
            for i, latent in zip(missing, fresh):
                latents[i] = latent
        self.hits += len(keys) - len(missing)
        for key, latent in zip(keys, latents):  # a batch larger than the store keeps its last samples
            self._remember(key, latent)
        return torch.stack(latents)

    def _remember(self, key: tuple, latent: torch.Tensor) -> None:
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        self._entries[key] = latent.clone()  # not a view that would pin the whole batch's output
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)


def _key(sample: torch.Tensor) -> tuple:
    """Shape, dtype, device and a BLAKE2b digest of the sample's bytes."""
    data = sample.detach().contiguous().view(torch.uint8).cpu().numpy()
    digest = hashlib.blake2b(data.data, digest_size=20).digest()
    return tuple(sample.shape), sample.dtype, sample.device, digest
