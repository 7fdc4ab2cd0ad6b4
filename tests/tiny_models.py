"""Tiny Stable-Diffusion-2-shaped weights made by the tests themselves (random, seeded).

Used where the golden matting checkpoints do not fit: the SD2 -> SDMatte weight processing, and
foreign files the loader must recognise and refuse.
"""

from __future__ import annotations

import torch


def _clip_text_state(hidden: int = 32) -> dict[str, torch.Tensor]:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=49408, hidden_size=hidden, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, hidden_act="gelu",
    )
    model = CLIPTextModel(config)
    state = model.state_dict()
    # Files use the transformers 4 layout (``text_model.`` inside CLIPTextModel).
    if not hasattr(model, "text_model"):
        state = {f"text_model.{k}": v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.endswith("position_ids")}


def tiny_sd2_state_dict(seed: int = 0, text_width: int = 32) -> dict[str, torch.Tensor]:
    """A flat SD2-layout state dict (``unet.``/``vae.``/``text_encoder.``), diffusers key names.

    Like the golden fixtures: text-width cross-attention in the down/up blocks, 1024 in the mid block.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(64, 64),
        layers_per_block=1,
        attention_head_dim=1,
        cross_attention_dim=(text_width, 1024),
        use_linear_projection=True,
    )
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 32, 32, 32),
        layers_per_block=1,
        latent_channels=4,
    )
    state = {f"unet.{k}": v for k, v in unet.state_dict().items()}
    state.update({f"vae.{k}": v for k, v in vae.state_dict().items()})
    state.update({f"text_encoder.{k}": v for k, v in _clip_text_state(text_width).items()})
    return state


def ldm_sd15_like_state_dict() -> dict[str, torch.Tensor]:
    """The few keys that make a file recognisable as an original-layout SD1.5 checkpoint."""
    return {
        "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(320, 768),
        "first_stage_model.encoder.conv_in.weight": torch.zeros(128, 3, 3, 3),
    }
