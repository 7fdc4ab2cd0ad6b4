"""The two autoencoder families and the value conventions each was trained with.

- SDMatte / SDMatte*: SD2's ``AutoencoderKL``. Inputs in [-1, 1]; the latent is the posterior
  **mean** (no sampling) times 0.18215; decoding goes through ``post_quant_conv``.
- LiteSDMatte: TAESD (``AutoencoderTiny``). The authors feed it [0, 1] values as they are
  (TAESD's encoder then maps them once more with (x + 1) / 2); scaling factor 1.
Both decoders return an RGB image in [-1, 1] whose channel mean is the matte.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, AutoencoderTiny

from . import banded, tiny_fused
from .architecture import KLAutoencoderArchitecture, TinyAutoencoderArchitecture


class _MatteDecoding:
    """Shared tail: the decoder's RGB in [-1, 1] -> channel mean -> matte in [0, 1]."""

    def decode_matte(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, 4, h, w) scaled latent -> (B, 1, 8h, 8w) matte in [0, 1]."""
        rgb = self.decode_rgb(latent)
        return (rgb.mean(dim=1, keepdim=True).clamp(-1.0, 1.0) + 1.0) / 2.0


class KLMattingAutoencoder(_MatteDecoding, AutoencoderKL):
    """SD2's AutoencoderKL (keys ``encoder.``, ``quant_conv.``, ``post_quant_conv.``, ``decoder.``).

    Encoder and decoder run in bands of rows (``banded``): the stock values at a fraction of the
    memory. ``AutoencoderKL.encode`` / ``decode`` remain the stock path.
    """

    @classmethod
    def from_architecture(cls, arch: KLAutoencoderArchitecture) -> "KLMattingAutoencoder":
        n = len(arch.block_out_channels)
        return cls(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=arch.block_out_channels,
            layers_per_block=arch.layers_per_block,
            latent_channels=arch.latent_channels,
            scaling_factor=arch.scaling_factor,
        )

    def encode_scaled(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 4, H/8, W/8): posterior mean x scaling factor."""
        moments = self.quant_conv(banded.encode(self.encoder, pixels * 2.0 - 1.0))
        mean = moments[:, : self.config.latent_channels]
        return mean * self.config.scaling_factor

    def decode_rgb(self, latent: torch.Tensor) -> torch.Tensor:
        return banded.decode(self.decoder, self.post_quant_conv(latent / self.config.scaling_factor))


class TinyMattingAutoencoder(_MatteDecoding, AutoencoderTiny):
    """TAESD (keys ``encoder.layers.``, ``decoder.layers.``).

    ``encode_scaled`` / ``decode_rgb`` compute what the stock ``EncoderTiny`` / ``DecoderTiny``
    forwards compute, with ReLUs and residual adds fused into the convolutions (``tiny_fused``:
    bit-identical on the CPU, the stock modules elsewhere).
    """

    @classmethod
    def from_architecture(cls, arch: TinyAutoencoderArchitecture) -> "TinyMattingAutoencoder":
        return cls(
            in_channels=3,
            out_channels=3,
            encoder_block_out_channels=arch.encoder_block_out_channels,
            decoder_block_out_channels=arch.decoder_block_out_channels,
            num_encoder_blocks=arch.num_encoder_blocks,
            num_decoder_blocks=arch.num_decoder_blocks,
            latent_channels=arch.latent_channels,
            scaling_factor=arch.scaling_factor,
        )

    def encode_scaled(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1], given to TAESD as is (as the authors do) -> (B, 4, H/8, W/8)."""
        # EncoderTiny.forward: TAESD maps [-1, 1] to [0, 1] once more
        encoded = tiny_fused.run_layers(self.encoder.layers, pixels.add(1).div(2))
        return encoded * self.config.scaling_factor

    def decode_rgb(self, latent: torch.Tensor) -> torch.Tensor:
        # DecoderTiny.forward: a soft clamp, the layers, then [0, 1] -> [-1, 1]
        x = latent / self.config.scaling_factor
        x = torch.tanh(x / 3) * 3
        return tiny_fused.run_layers(self.decoder.layers, x).mul(2).sub(1)


def build_autoencoder(arch):
    if isinstance(arch, TinyAutoencoderArchitecture):
        return TinyMattingAutoencoder.from_architecture(arch)
    return KLMattingAutoencoder.from_architecture(arch)
