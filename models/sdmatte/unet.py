"""The SDMatte UNet: a Stable Diffusion 2 (or BK-SDM) UNet without a diffusion timestep.

Built from diffusers' UNet blocks. Differences from ``UNet2DConditionModel``, all from the
SDMatte paper and checkpoints:

- ``conv_in`` takes 8 channels: image latent and prompt latent side by side.
- The conditioning vector is the opacity flag through the time embedding plus a coordinate
  embedding (``point_embedding`` for clicks, ``bbox_time_proj`` + ``bbox_embedding`` for boxes).
- ``aux_conv_in`` turns the prompt latent into tokens (B, h*w, 1024) that are the mid block's
  cross-attention context; down and up blocks cross-attend to the caption embedding.
- Self-attention is biased by the prompt map (see ``attention.py``).
"""

from __future__ import annotations

import torch
from torch import nn
from diffusers.models.embeddings import TimestepEmbedding, Timesteps, get_timestep_embedding
from diffusers.models.unets.unet_2d_blocks import get_down_block, get_mid_block, get_up_block

from .architecture import ATTENTION_HEAD_DIM, NUM_POINT_COORDS, UNetArchitecture
from .attention import PromptBiasAttnProcessor, PromptKeys

NORM_GROUPS = 32
NORM_EPS = 1e-5
ACTIVATION = "silu"


def _heads(channels: int) -> int:
    return max(1, channels // ATTENTION_HEAD_DIM)


class MattingUNet(nn.Module):
    def __init__(self, arch: UNetArchitecture):
        super().__init__()
        self.arch = arch
        channels = arch.block_out_channels
        temb = arch.time_embed_dim
        self.conv_in = nn.Conv2d(arch.in_channels, channels[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(channels[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(channels[0], temb, act_fn=ACTIVATION)
        self.point_embedding = TimestepEmbedding(arch.point_embedding_input_dim, temb)
        self.bbox_time_proj = Timesteps(arch.bbox_embedding_input_dim // 4, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.bbox_embedding = TimestepEmbedding(arch.bbox_embedding_input_dim, temb)
        self.aux_conv_in = nn.Conv2d(4, arch.prompt_token_dim, kernel_size=3, padding=1)
        common = dict(
            temb_channels=temb,
            resnet_eps=NORM_EPS,
            resnet_act_fn=ACTIVATION,
            resnet_groups=NORM_GROUPS,
            use_linear_projection=arch.use_linear_projection,
        )

        self.down_blocks = nn.ModuleList()
        previous = channels[0]
        for i, block_type in enumerate(arch.down_block_types):
            self.down_blocks.append(
                get_down_block(
                    block_type,
                    num_layers=arch.layers_per_block[i],
                    transformer_layers_per_block=arch.transformer_layers_per_block[i],
                    in_channels=previous,
                    out_channels=channels[i],
                    add_downsample=i < len(channels) - 1,
                    num_attention_heads=_heads(channels[i]),
                    attention_head_dim=ATTENTION_HEAD_DIM,
                    cross_attention_dim=arch.down_cross_attention_dims[i],
                    downsample_padding=1,
                    **common,
                )
            )
            previous = channels[i]

        self.mid_block = None
        if arch.has_mid_block:
            self.mid_block = get_mid_block(
                "UNetMidBlock2DCrossAttn",
                in_channels=channels[-1],
                transformer_layers_per_block=arch.mid_transformer_layers,
                num_attention_heads=_heads(channels[-1]),
                cross_attention_dim=arch.mid_cross_attention_dim,
                attention_head_dim=ATTENTION_HEAD_DIM,
                **common,
            )

        self.up_blocks = nn.ModuleList()
        reversed_channels = list(reversed(channels))
        reversed_layers = list(reversed(arch.layers_per_block))
        previous = reversed_channels[0]
        for i, block_type in enumerate(arch.up_block_types):
            out_channels = reversed_channels[i]
            self.up_blocks.append(
                get_up_block(
                    block_type,
                    num_layers=reversed_layers[i] + 1,
                    transformer_layers_per_block=arch.up_transformer_layers[i],
                    in_channels=reversed_channels[min(i + 1, len(channels) - 1)],
                    out_channels=out_channels,
                    prev_output_channel=previous,
                    add_upsample=i < len(channels) - 1,
                    resolution_idx=i,
                    num_attention_heads=_heads(out_channels),
                    attention_head_dim=ATTENTION_HEAD_DIM,
                    cross_attention_dim=arch.up_cross_attention_dims[i],
                    **common,
                )
            )
            previous = out_channels

        self.conv_norm_out = nn.GroupNorm(NORM_GROUPS, channels[0], eps=NORM_EPS)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(channels[0], arch.out_channels, kernel_size=3, padding=1)
        self.set_attention_processor(PromptBiasAttnProcessor())

    def set_attention_processor(self, processor) -> None:
        for module in self.modules():
            if hasattr(module, "set_processor") and hasattr(module, "to_q"):
                module.set_processor(processor)

    def condition(self, transparent: torch.Tensor, coords: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Conditioning vector (B, time_embed_dim) from the opacity flag and the prompt coordinates.

        ``coords`` (B, 20) means clicks, (B, 4) a box; the opacity flag enters as the "timestep"
        ``1 - transparent``.
        """
        opacity = 1.0 - transparent.to(torch.float32)
        emb = self.time_embedding(self.time_proj(opacity).to(dtype))
        batch = coords.shape[0]
        if coords.shape[1] == NUM_POINT_COORDS:
            width = self.arch.point_embedding_input_dim // NUM_POINT_COORDS
            freqs = get_timestep_embedding(coords.flatten().float(), width, flip_sin_to_cos=True, downscale_freq_shift=0)
            return emb + self.point_embedding(freqs.reshape(batch, -1).to(dtype))
        freqs = self.bbox_time_proj(coords.flatten().float())
        return emb + self.bbox_embedding(freqs.reshape(batch, -1).to(dtype))

    def forward(
        self,
        latents: torch.Tensor,
        condition: torch.Tensor,
        caption_embedding: torch.Tensor,
        attention_bias: torch.Tensor | None,
    ) -> torch.Tensor:
        """
        latents: (B, 8, h, w) image latent ++ prompt latent.
        condition: (B, time_embed_dim) from ``condition``.
        caption_embedding: (B, 77, text width), context of the down and up blocks.
        attention_bias: (B, 1, h, w) additive self-attention key bias, or None.
        Returns the predicted alpha latent (B, 4, h, w).
        """
        prompt_latent = latents[:, latents.shape[1] // 2 :]
        # The bias at every level and the keys each level keeps, decided once for the whole pass.
        keys = None if attention_bias is None else {"prompt_keys": PromptKeys(attention_bias, len(self.down_blocks))}
        sample = self.conv_in(latents)
        skips = (sample,)
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                sample, res = block(
                    sample,
                    temb=condition,
                    encoder_hidden_states=caption_embedding,
                    attention_mask=attention_bias,
                    cross_attention_kwargs=keys,
                )
            else:
                sample, res = block(sample, temb=condition)
            skips += res

        if self.mid_block is not None:
            tokens = self.aux_conv_in(prompt_latent).flatten(2).transpose(1, 2)
            sample = self.mid_block(
                sample, condition, encoder_hidden_states=tokens, attention_mask=attention_bias, cross_attention_kwargs=keys
            )

        for i, block in enumerate(self.up_blocks):
            res, skips = skips[-len(block.resnets) :], skips[: -len(block.resnets)]
            upsample_size = skips[-1].shape[2:] if i < len(self.up_blocks) - 1 else None
            if getattr(block, "has_cross_attention", False):
                sample = block(
                    sample,
                    res_hidden_states_tuple=res,
                    temb=condition,
                    encoder_hidden_states=caption_embedding,
                    attention_mask=attention_bias,
                    cross_attention_kwargs=keys,
                    upsample_size=upsample_size,
                )
            else:
                sample = block(sample, res_hidden_states_tuple=res, temb=condition, upsample_size=upsample_size)

        return self.conv_out(self.conv_act(self.conv_norm_out(sample)))
