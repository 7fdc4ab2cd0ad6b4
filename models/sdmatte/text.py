"""Caption embeddings for the down and up blocks' cross-attention.

The caption is ``""`` unless the user gives one. Its token ids are fixed, so its embedding is
computed once per model; the text encoder itself stays on the CPU and only runs again for a
non-empty caption (the authors trained with RefMatte captions).
"""

from __future__ import annotations

import functools
import os
from typing import Callable

import torch
from transformers import CLIPTextConfig, CLIPTextModel

from .architecture import TextEncoderArchitecture

BOS_TOKEN = 49406
EOS_TOKEN = 49407
PAD_TOKEN = 0  # SD2's tokenizer pads with "!" (id 0), not with the end token as SD1 does


def build_text_encoder(arch: TextEncoderArchitecture) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=arch.vocab_size,
        hidden_size=arch.hidden_size,
        intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_hidden_layers,
        num_attention_heads=arch.num_attention_heads,
        max_position_embeddings=arch.max_position_embeddings,
        hidden_act="gelu",  # OpenCLIP ViT-H (SD2); SD1's CLIP-L uses quick_gelu
        layer_norm_eps=1e-5,
        bos_token_id=BOS_TOKEN,
        eos_token_id=EOS_TOKEN,
        pad_token_id=1,
    )
    return CLIPTextModel(config)


def text_model_keys(text_encoder: CLIPTextModel, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoint keys (``text_model.*``, transformers 4 layout) -> this transformers' layout.

    transformers 5 dropped the ``text_model`` level inside ``CLIPTextModel``.
    """
    if hasattr(text_encoder, "text_model"):
        return tensors
    prefix = "text_model."
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in tensors.items()}


def reset_position_ids(text_encoder: CLIPTextModel) -> None:
    """``position_ids`` is a non-persistent buffer: not in checkpoints, so rebuild it after a meta-device build."""
    embeddings = getattr(text_encoder, "text_model", text_encoder).embeddings
    count = embeddings.position_embedding.weight.shape[0]
    embeddings.register_buffer("position_ids", torch.arange(count).unsqueeze(0), persistent=False)


@functools.lru_cache(maxsize=1)
def _comfyui_tokenizer():
    """The CLIP BPE vocabulary ComfyUI ships (``comfy/sd1_tokenizer``), with SD2's "!" padding."""
    try:
        import comfy  # noqa: PLC0415  (only inside a ComfyUI install)
    except ImportError:
        raise ValueError(
            "A caption needs the CLIP tokenizer that ComfyUI ships (comfy/sd1_tokenizer); "
            "ComfyUI is not importable here. Leave the caption empty, or run inside ComfyUI."
        ) from None
    from transformers import CLIPTokenizer  # noqa: PLC0415

    # ``comfy`` has no __init__.py: a namespace package, so look along its __path__.
    folders = [os.path.join(p, "sd1_tokenizer") for p in comfy.__path__]
    folder = next((f for f in folders if os.path.isdir(f)), None)
    if folder is None:
        raise ValueError(f"ComfyUI's CLIP tokenizer folder was not found (looked in {', '.join(folders)})")
    return CLIPTokenizer.from_pretrained(folder, pad_token="!")


def caption_token_ids(caption: str, length: int) -> torch.Tensor:
    """Token ids (1, length): BOS, the caption's tokens, EOS, then "!" padding; truncated to length."""
    if caption == "":
        ids = [BOS_TOKEN, EOS_TOKEN]
    else:
        tokenizer = _comfyui_tokenizer()
        ids = tokenizer(caption, truncation=True, max_length=length)["input_ids"]
    return torch.tensor([ids + [PAD_TOKEN] * (length - len(ids))], dtype=torch.long)


class CaptionEmbedder:
    """Caption -> (1, 77, width) embedding on the CPU.

    Not an ``nn.Module`` on purpose: moving the matting model to the compute device must not move
    the text encoder with it. The encoder is not even kept in memory: ``load_encoder`` rebuilds
    it for a caption not seen before (rare: the default caption is embedded at load time), and
    the last few embeddings are cached.
    """

    CACHE_SIZE = 16

    def __init__(self, load_encoder: Callable[[], CLIPTextModel], after_use: Callable[[], None] | None = None):
        self._load_encoder = load_encoder
        self._after_use = after_use  # e.g. hand the encoder's file pages back once it has run
        self._cache: dict[str, torch.Tensor] = {}

    @torch.inference_mode()
    def __call__(self, caption: str) -> torch.Tensor:
        if caption not in self._cache:
            ids = caption_token_ids(caption, length=77)  # checked against the encoder below
            encoder = self._load_encoder()
            if encoder.config.max_position_embeddings != ids.shape[1]:
                ids = caption_token_ids(caption, encoder.config.max_position_embeddings)
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[caption] = encoder.eval()(input_ids=ids).last_hidden_state.float()
            del encoder
            if self._after_use is not None:
                self._after_use()
        return self._cache[caption]
