"""SDMatte / LiteSDMatte as one module: image + prompt -> alpha in a single UNet pass."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from ..family import KINDS
from ..residency import release_mapped_pages
from .architecture import NUM_POINT_COORDS, MattingArchitecture
from .attention import MaterializedAttnProcessor, PromptBiasAttnProcessor, prompt_attention_bias
from .autoencoder import build_autoencoder
from .banded import BAND_ELEMENTS
from ..encoding_cache import EncodingCache
from .text import CaptionEmbedder
from .unet import MattingUNet

MASKED_KINDS = ("point", "box", "mask")  # trimap and automatic prompts attend everywhere
LATENT_STRIDE = 8


class MattingModel(nn.Module):
    works_at_input_size = False  # the pipeline resizes to the working resolution (multiples of 8)

    """``alpha = model(image, prompt_map, coords, kind, transparent, caption=None)``.

    Submodules ``unet`` and ``vae`` carry the checkpoint's ``unet.``/``vae.`` tensors. The caption
    embedder (``text_encoder.`` tensors) is kept beside the module, on the CPU: moving the model
    to the compute device moves only what inference runs there. ``latent_cache`` keeps the
    encodings of recently seen pixels (see ``models/encoding_cache.py``); it empties when the model moves.
    """

    def __init__(self, arch: MattingArchitecture, captions: CaptionEmbedder | None = None):
        super().__init__()
        self.arch = arch
        self.family = arch.family
        self.prompt_kinds = KINDS
        self.unet = MattingUNet(arch.unet)
        self.vae = build_autoencoder(arch.vae)
        self.captions = captions
        width = arch.text_encoder.hidden_size
        length = arch.text_encoder.max_position_embeddings
        # The empty caption's embedding (token ids are fixed), filled in by the loader.
        self.register_buffer("empty_caption", torch.zeros(1, length, width), persistent=False)
        # Memory-mapped UNet weights are streamed: each block's pages leave the resident set once
        # the block has run (3.5 GB for SDMatte would otherwise stay resident through decoding).
        for block in (*self.unet.down_blocks, self.unet.mid_block, *self.unet.up_blocks):
            if block is not None:
                block.register_forward_hook(_release_block_weights)
        self.latent_cache = EncodingCache()
        self.register_load_state_dict_post_hook(lambda module, keys: module.latent_cache.clear())

    def _apply(self, fn, recurse=True):
        self.latent_cache.clear()  # new device or dtype: cached latents are stale
        return super()._apply(fn, recurse)

    @property
    def device(self) -> torch.device:
        return self.unet.conv_in.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.conv_in.weight.dtype

    @property
    def vae_dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def use_reference_attention(self, enabled: bool = True) -> None:
        """Switch to the authors' materialised attention scores (for benchmarks and checks)."""
        self.unet.set_attention_processor(MaterializedAttnProcessor() if enabled else PromptBiasAttnProcessor())

    def caption_embedding(self, caption: str | None, batch: int) -> torch.Tensor:
        if caption:
            if self.captions is None:
                raise ValueError("this model was loaded without its text encoder: captions are unavailable")
            embedding = self.captions(caption)
        else:
            embedding = self.empty_caption
        return embedding.to(self.device, self.dtype).expand(batch, -1, -1)

    def _check_inputs(self, image, prompt_map, coords, kind, transparent) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown prompt kind {kind!r}; expected one of {', '.join(KINDS)}")
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, H, W) RGB, got {tuple(image.shape)}")
        batch, _, height, width = image.shape
        if height % LATENT_STRIDE or width % LATENT_STRIDE or height < LATENT_STRIDE or width < LATENT_STRIDE:
            raise ValueError(f"image height and width must be positive multiples of 8, got {height}x{width}")
        if tuple(prompt_map.shape) != (batch, 1, height, width):
            raise ValueError(f"prompt_map must be {(batch, 1, height, width)}, got {tuple(prompt_map.shape)}")
        expected = NUM_POINT_COORDS if kind == "point" else 4
        if tuple(coords.shape) != (batch, expected):
            raise ValueError(f"coords for kind {kind!r} must be {(batch, expected)}, got {tuple(coords.shape)}")
        if tuple(transparent.shape) != (batch,):
            raise ValueError(f"transparent must be ({batch},), got {tuple(transparent.shape)}")

    @torch.inference_mode()
    def forward(
        self,
        image: torch.Tensor,
        prompt_map: torch.Tensor,
        coords: torch.Tensor,
        kind: str,
        transparent: torch.Tensor,
        caption: str | None = None,
    ) -> torch.Tensor:
        """
        image: (B, 3, H, W) RGB in [0, 1]; H, W multiples of 8.
        prompt_map: (B, 1, H, W) in [0, 1].
        coords: (B, 20) normalised clicks for kind "point", else (B, 4) normalised box.
        kind: "point", "box", "mask", "trimap" or "auto".
        transparent: (B,) bool, the opacity flag.
        Returns alpha (B, 1, H, W) in [0, 1] on ``image``'s device.
        """
        self._check_inputs(image, prompt_map, coords, kind, transparent)
        with ieee_float32(self.device):
            alpha = self._forward(image, prompt_map, coords, kind, transparent, caption)
        out_dtype = image.dtype if image.dtype.is_floating_point else torch.float32
        return alpha.to(image.device, out_dtype)

    def _forward(self, image, prompt_map, coords, kind, transparent, caption) -> torch.Tensor:
        device, batch = self.device, image.shape[0]
        image = image.to(device, self.vae_dtype)
        prompt_map = prompt_map.to(device, self.vae_dtype)

        # Two encoder passes rather than one on a doubled batch: the encoder's full-resolution
        # activations are the largest tensors of the whole model. Pixels seen recently (the same
        # image with a new prompt) are not encoded again.
        image_latent = self.latent_cache.encode(image, self.vae.encode_scaled)
        prompt_latent = self.latent_cache.encode(prompt_map.expand(-1, 3, -1, -1), self.vae.encode_scaled)
        latents = torch.cat([image_latent, prompt_latent], dim=1).to(self.dtype)

        condition = self.unet.condition(transparent.to(device), coords.to(device), self.dtype)
        bias = prompt_attention_bias(prompt_map, self.dtype) if kind in MASKED_KINDS else None
        alpha_latent = self.unet(latents, condition, self.caption_embedding(caption, batch), bias)
        return self.vae.decode_matte(alpha_latent.to(self.vae_dtype))

    def inference_memory_bytes(self, batch: int, height: int, width: int) -> int:
        """Working memory of one forward pass at (batch, height, width), weights excluded.

        Derived from where the activations peak, the autoencoder at full resolution:
        - KL (banded, see ``banded``): the decoder's last stage holds two maps of its output width
          plus the previous stage's map at a quarter of the pixels, and a few bands;
        - Tiny (stock TAESD): about six maps of its widest full-resolution width.
        Image and prompt map are encoded one after the other. The UNet keeps its skip connections
        (3 per level) plus a working set, about 24 maps of its first-level width at the latent
        grid, and fused attention needs no (tokens x tokens) matrix. A 25 % margin covers
        allocator slack.
        """
        pixels = height * width
        vae = self.arch.vae
        vae_itemsize = _itemsize(self.vae_dtype)
        if hasattr(vae, "block_out_channels"):
            widths = vae.block_out_channels
            per_pixel = 2 * widths[0] + widths[min(1, len(widths) - 1)] / 4
            vae_bytes = batch * pixels * per_pixel * vae_itemsize + 6 * BAND_ELEMENTS * vae_itemsize
        else:
            widest = max(vae.encoder_block_out_channels[0], vae.decoder_block_out_channels[-1])
            vae_bytes = batch * pixels * widest * 6 * vae_itemsize
        latent_pixels = pixels // (LATENT_STRIDE * LATENT_STRIDE)
        unet_bytes = batch * latent_pixels * self.arch.unet.block_out_channels[0] * 24 * _itemsize(self.dtype)
        return int((vae_bytes + unet_bytes) * 1.25)


@contextmanager
def ieee_float32(device: torch.device):
    """Float32 matmuls and convolutions in full float32 on CUDA for the duration, then as they were.

    cuDNN computes float32 convolutions in TF32 by default (10-bit mantissas on Ampere and later:
    errors of 1e-3 in a matte), and a host may allow TF32 matmuls. The autoencoder is float32
    precisely because a matte's edges live in the low bits, so the pass runs with TF32 off
    (torch >= 2.9's ``fp32_precision`` flags where they exist, else the ``allow_tf32`` ones; mixing
    the two raises in recent torch). Half-precision layers are unaffected. Elsewhere: nothing.
    """
    if device.type != "cuda":
        yield
        return
    backends = torch.backends
    if hasattr(getattr(backends.cudnn, "conv", None), "fp32_precision"):
        flags, strict = [(backends.cudnn.conv, "fp32_precision"), (backends.cuda.matmul, "fp32_precision")], "ieee"
    else:
        flags, strict = [(backends.cudnn, "allow_tf32"), (backends.cuda.matmul, "allow_tf32")], False
    saved = [getattr(owner, name) for owner, name in flags]
    try:
        for owner, name in flags:
            setattr(owner, name, strict)
        yield
    finally:
        for (owner, name), value in zip(flags, saved):
            setattr(owner, name, value)


def _release_block_weights(block: nn.Module, inputs, output) -> None:
    release_mapped_pages(block.parameters())


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()
