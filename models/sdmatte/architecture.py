"""Read a matting model's architecture from its tensor shapes.

Released SDMatte checkpoints come without config files, so every hyper-parameter that decides a
module's shape is read back from the weights. What shapes cannot tell (activation functions,
normalisation groups, the VAE scaling factor) is fixed by the Stable Diffusion 2 family the
models are built on.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

from ..errors import CheckpointError

if TYPE_CHECKING:
    import torch

ShapeMap = Mapping[str, Sequence[int]]

COMPONENTS = ("unet", "vae", "text_encoder")
ATTENTION_HEAD_DIM = 64  # SD2 and BK-SDM: heads = channels / 64 (5, 10, 20, 20 at full size)
NUM_POINT_COORDS = 20  # ten (x, y) clicks
KL_SCALING_FACTOR = 0.18215  # SD2's AutoencoderKL
TINY_SCALING_FACTOR = 1.0  # TAESD


@dataclass(frozen=True)
class UNetArchitecture:
    """Shape-defining hyper-parameters of the matting UNet (diffusers config terms)."""

    in_channels: int
    out_channels: int
    block_out_channels: tuple[int, ...]
    down_block_types: tuple[str, ...]
    up_block_types: tuple[str, ...]
    layers_per_block: tuple[int, ...]
    transformer_layers_per_block: tuple[int, ...]
    down_cross_attention_dims: tuple[int | None, ...]
    up_cross_attention_dims: tuple[int | None, ...]
    up_transformer_layers: tuple[int, ...]
    mid_cross_attention_dim: int | None  # None: no mid block (BK-SDM-Base style)
    mid_transformer_layers: int
    use_linear_projection: bool
    time_embed_dim: int
    point_embedding_input_dim: int
    bbox_embedding_input_dim: int
    prompt_token_dim: int  # aux_conv_in output channels: width of the mid block's prompt tokens

    @property
    def has_mid_block(self) -> bool:
        return self.mid_cross_attention_dim is not None


@dataclass(frozen=True)
class KLAutoencoderArchitecture:
    block_out_channels: tuple[int, ...]
    layers_per_block: int
    latent_channels: int
    scaling_factor: float = KL_SCALING_FACTOR


@dataclass(frozen=True)
class TinyAutoencoderArchitecture:
    encoder_block_out_channels: tuple[int, ...]
    num_encoder_blocks: tuple[int, ...]
    decoder_block_out_channels: tuple[int, ...]
    num_decoder_blocks: tuple[int, ...]
    latent_channels: int
    scaling_factor: float = TINY_SCALING_FACTOR


@dataclass(frozen=True)
class TextEncoderArchitecture:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    max_position_embeddings: int


@dataclass(frozen=True)
class MattingArchitecture:
    family: str  # "sdmatte" (AutoencoderKL) or "litesdmatte" (AutoencoderTiny)
    unet: UNetArchitecture
    vae: KLAutoencoderArchitecture | TinyAutoencoderArchitecture
    text_encoder: TextEncoderArchitecture

    def summary(self) -> dict:
        return asdict(self)


def _indices(shapes: ShapeMap, pattern: str) -> list[int]:
    regex = re.compile(pattern)
    found = {int(m.group(1)) for key in shapes if (m := regex.match(key))}
    return sorted(found)


def _cross_attention_dim(shapes: ShapeMap, block: str) -> int | None:
    key = f"{block}.attentions.0.transformer_blocks.0.attn2.to_k.weight"
    return int(shapes[key][1]) if key in shapes else None


def _transformer_layers(shapes: ShapeMap, block: str) -> int:
    return len(_indices(shapes, re.escape(block) + r"\.attentions\.0\.transformer_blocks\.(\d+)\."))


def infer_unet(shapes: ShapeMap) -> UNetArchitecture:
    """``shapes``: UNet tensor shapes by key, without the ``unet.`` prefix."""
    down = _indices(shapes, r"down_blocks\.(\d+)\.")
    up = _indices(shapes, r"up_blocks\.(\d+)\.")
    block_out = tuple(int(shapes[f"down_blocks.{i}.resnets.0.conv1.weight"][0]) for i in down)
    has_attn = [f"down_blocks.{i}.attentions.0.proj_in.weight" in shapes for i in down]
    up_has_attn = [f"up_blocks.{i}.attentions.0.proj_in.weight" in shapes for i in up]
    proj_in = next((shapes[k] for k in shapes if k.endswith("attentions.0.proj_in.weight")), (0, 0))
    mid_dim = _cross_attention_dim(shapes, "mid_block")
    return UNetArchitecture(
        in_channels=int(shapes["conv_in.weight"][1]),
        out_channels=int(shapes["conv_out.weight"][0]),
        block_out_channels=block_out,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in has_attn),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in up_has_attn),
        layers_per_block=tuple(len(_indices(shapes, rf"down_blocks\.{i}\.resnets\.(\d+)\.")) for i in down),
        transformer_layers_per_block=tuple(max(1, _transformer_layers(shapes, f"down_blocks.{i}")) for i in down),
        down_cross_attention_dims=tuple(_cross_attention_dim(shapes, f"down_blocks.{i}") for i in down),
        up_cross_attention_dims=tuple(_cross_attention_dim(shapes, f"up_blocks.{i}") for i in up),
        up_transformer_layers=tuple(max(1, _transformer_layers(shapes, f"up_blocks.{i}")) for i in up),
        mid_cross_attention_dim=mid_dim,
        mid_transformer_layers=max(1, _transformer_layers(shapes, "mid_block")),
        use_linear_projection=len(proj_in) == 2,
        time_embed_dim=int(shapes["time_embedding.linear_1.weight"][0]),
        point_embedding_input_dim=int(shapes["point_embedding.linear_1.weight"][1]),
        bbox_embedding_input_dim=int(shapes["bbox_embedding.linear_1.weight"][1]),
        prompt_token_dim=int(shapes["aux_conv_in.weight"][0]),
    )


def infer_kl_autoencoder(shapes: ShapeMap) -> KLAutoencoderArchitecture:
    down = _indices(shapes, r"encoder\.down_blocks\.(\d+)\.")
    return KLAutoencoderArchitecture(
        block_out_channels=tuple(int(shapes[f"encoder.down_blocks.{i}.resnets.0.conv2.weight"][0]) for i in down),
        layers_per_block=len(_indices(shapes, r"encoder\.down_blocks\.0\.resnets\.(\d+)\.")),
        latent_channels=int(shapes["post_quant_conv.weight"][0]),
    )


def _tiny_stages(shapes: ShapeMap, part: str) -> tuple[list[int], list[int], int]:
    """Walk TAESD's flat ``layers`` list: plain convs open a stage, residual blocks fill it.

    Returns (stage widths, residual blocks per stage, channels of the last conv).
    """
    widths: list[int] = []
    blocks: list[int] = []
    last_out = 0
    for index in _indices(shapes, rf"{part}\.layers\.(\d+)\."):
        if f"{part}.layers.{index}.conv.0.weight" in shapes:
            blocks[-1] += 1
        elif f"{part}.layers.{index}.weight" in shapes:
            last_out = int(shapes[f"{part}.layers.{index}.weight"][0])
            widths.append(last_out)
            blocks.append(0)
    return widths, blocks, last_out


def infer_tiny_autoencoder(shapes: ShapeMap) -> TinyAutoencoderArchitecture:
    enc_widths, enc_blocks, latent = _tiny_stages(shapes, "encoder")
    dec_widths, dec_blocks, _ = _tiny_stages(shapes, "decoder")
    # Encoder: one conv per stage plus the final conv to the latent. Decoder: the first conv, then
    # after each stage but the last an upsampling conv, plus the final conv to RGB.
    return TinyAutoencoderArchitecture(
        encoder_block_out_channels=tuple(enc_widths[:-1]),
        num_encoder_blocks=tuple(enc_blocks[:-1]),
        decoder_block_out_channels=tuple(dec_widths[:-1]),
        num_decoder_blocks=tuple(dec_blocks[:-1]),
        latent_channels=latent,
    )


def text_encoder_heads(hidden_size: int) -> int:
    """CLIP text encoders use 64-wide heads (SD2's OpenCLIP-H: 1024 wide, 16 heads).

    Shapes cannot tell the head count; widths that are not a multiple of 64 only occur in small
    test encoders, which use 16-wide heads.
    """
    if hidden_size % ATTENTION_HEAD_DIM == 0:
        return hidden_size // ATTENTION_HEAD_DIM
    return max(1, hidden_size // 16)


def infer_text_encoder(shapes: ShapeMap, num_attention_heads: int | None = None) -> TextEncoderArchitecture:
    vocab, hidden = shapes["text_model.embeddings.token_embedding.weight"]
    return TextEncoderArchitecture(
        vocab_size=int(vocab),
        hidden_size=int(hidden),
        intermediate_size=int(shapes["text_model.encoder.layers.0.mlp.fc1.weight"][0]),
        num_hidden_layers=len(_indices(shapes, r"text_model\.encoder\.layers\.(\d+)\.")),
        num_attention_heads=num_attention_heads or text_encoder_heads(int(hidden)),
        max_position_embeddings=int(shapes["text_model.embeddings.position_embedding.weight"][0]),
    )


def split_components(shapes: ShapeMap) -> dict[str, dict[str, Sequence[int]]]:
    parts: dict[str, dict[str, Sequence[int]]] = {"unet": {}, "vae": {}, "text_encoder": {}, "other": {}}
    for key, shape in shapes.items():
        prefix, _, rest = key.partition(".")
        if prefix in COMPONENTS and rest:
            parts[prefix][rest] = shape
        else:
            parts["other"][key] = shape
    return parts


def describe_foreign_checkpoint(shapes: ShapeMap) -> str | None:
    """Name what a non-matting file looks like, with what to do, or None if it looks like ours."""
    keys = list(shapes)
    if any(k.startswith("model.diffusion_model.") for k in keys):
        ctx = next((shapes[k][1] for k in keys if k.endswith("attn2.to_k.weight")), None)
        kind = {768: "an SD1.5", 1024: "a Stable Diffusion 2", 2048: "an SDXL"}.get(ctx, "a Stable Diffusion")
        return (
            f"{kind} checkpoint (original single-file layout), not a matting model: "
            "put an SDMatte, SDMatte* or LiteSDMatte checkpoint here instead"
        )
    parts = split_components(shapes)
    unet = parts["unet"] or {k: v for k, v in shapes.items() if k.startswith(("conv_in.", "down_blocks."))}
    if not unet and not parts["vae"]:
        if any(k.startswith(("encoder.", "decoder.")) for k in keys):
            return "a bare autoencoder (VAE), not a matting model"
        if any(k.startswith("text_model.") for k in keys):
            return "a bare CLIP text encoder, not a matting model"
        return "not a matting checkpoint (no unet./vae./text_encoder. tensors)"
    if "conv_in.weight" in unet and "point_embedding.linear_1.weight" not in unet:
        return (
            "a plain Stable Diffusion 2 UNet (no point/box embeddings, 4 input channels): "
            "run weight processing first (python -m <pack>.models init-from-sd2 ...) to train from it; "
            "for matting, use a released SDMatte checkpoint"
        )
    if not parts["unet"] or not parts["vae"] or not parts["text_encoder"]:
        missing = [n for n in ("unet", "vae", "text_encoder") if not parts[n]]
        return f"an incomplete matting checkpoint: no {', '.join(missing)} tensors"
    return None


def infer_architecture(shapes: ShapeMap, text_heads: int | None = None) -> MattingArchitecture:
    """``shapes``: every tensor shape of a flat matting state dict (``unet.``/``vae.``/``text_encoder.`` keys)."""
    foreign = describe_foreign_checkpoint(shapes)
    if foreign:
        raise CheckpointError(f"This file looks like {foreign}.")
    parts = split_components(shapes)
    try:
        unet = infer_unet(parts["unet"])
        if "encoder.layers.0.weight" in parts["vae"]:
            family, vae = "litesdmatte", infer_tiny_autoencoder(parts["vae"])
        else:
            family, vae = "sdmatte", infer_kl_autoencoder(parts["vae"])
        text = infer_text_encoder(parts["text_encoder"], text_heads)
    except (KeyError, IndexError) as missing:
        raise CheckpointError(
            f"This matting checkpoint is missing tensor {missing} needed to read its architecture; "
            "the file is incomplete or from an unsupported model"
        ) from None
    return MattingArchitecture(family=family, unet=unet, vae=vae, text_encoder=text)


# Buffers some writers store and our modules rebuild: transformers < 4.31 saved CLIP's position ids.
HARMLESS_COMPONENT_SUFFIXES = (".position_ids",)


def select_model_tensors(tensors: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], Counter]:
    """The ``unet.``/``vae.``/``text_encoder.`` tensors of a checkpoint, and what was left out.

    Left out: tensors under any other top-level name (optimizer or EMA leftovers, other packs'
    extras), counted by that name, and buffers our modules rebuild (``position_ids``), counted by
    component. Anything else inside a component stays, so an architecture mismatch is still an
    error when the weights are assigned.
    """
    kept: dict[str, torch.Tensor] = {}
    skipped: Counter = Counter()
    for key, tensor in tensors.items():
        prefix, _, rest = key.partition(".")
        if prefix not in COMPONENTS or not rest:
            skipped[f"{prefix}.*" if rest else key] += 1
        elif key.endswith(HARMLESS_COMPONENT_SUFFIXES):
            skipped[f"{prefix}.*{key[key.rfind('.'):]}"] += 1
        else:
            kept[key] = tensor
    return kept, skipped
