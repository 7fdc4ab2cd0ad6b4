"""Random-valued weights, in the released file layouts, for the models the chain workflows need.

The shipped chain workflows run third-party packs (storyicon's ``comfyui_segment_anything``, kijai's
``ComfyUI-segment-anything-2``) and ComfyUI's own Stable Diffusion nodes. CI has no internet and no
real weights, so this module writes stand-ins that those loaders accept exactly as they accept the
published files: same file names, same containers, same key names and shapes, and same dtypes;
only the values are random (small and finite, so every network produces finite outputs).

    ensure(cache_root=None) -> dict[str, Path]      # name -> file or folder in the cache
    install(models_dir, files=None) -> dict[str, Path]  # symlinks in a ComfyUI models/ folder

Files (keys of ``ensure``'s result) and where ComfyUI users put them (``MODELS_SUBDIR``):

=====================================  ===========================  ==========================================
name                                   models/ folder               read by
=====================================  ===========================  ==========================================
``sam_vit_b_01ec64.pth``               ``sams/``                    segment_anything ``build_sam_vit_b``
                                                                    (storyicon's SAMModelLoader; strict load)
``groundingdino_swint_ogc.pth``        ``grounding-dino/``          storyicon's GroundingDinoModelLoader
``GroundingDINO_SwinT_OGC.cfg.py``     ``grounding-dino/``          (``{"model": state_dict}``, strict=False)
``bert-base-uncased``                  ``bert-base-uncased`` itself GroundingDINO's text encoder (transformers)
``sam2.1_hiera_tiny.safetensors``      ``sam2/``                    kijai's DownloadAndLoadSAM2Model (strict)
``sd-v1-5-inpainting.safetensors``     ``checkpoints/``             ComfyUI's CheckpointLoaderSimple (SD1.5
                                                                    inpainting: 9-channel UNet, fp16)
=====================================  ===========================  ==========================================

The storyicon pack builds the GroundingDINO file name from its download URL, so the checkpoint is
``groundingdino_swint_ogc.pth`` (lower case) beside ``GroundingDINO_SwinT_OGC.cfg.py``; any other name
makes the pack try to download.

The layouts are tables written here from the authors' model code (facebookresearch/segment-anything,
IDEA-Research/GroundingDINO as vendored in storyicon's pack, kijai's sam2 copy and its
``sam2.1_hiera_t.yaml``, ComfyUI's SD1.5 ``UNetModel``/``AutoencoderKL``/CLIP-L); nothing of theirs is
imported, so the output depends only on this file. ``tests/test_chain_weights.py`` checks every
table against the real loaders.

GroundingDINO is *shaped* rather than purely random: with plain random weights all 900 queries get
nearly the same score, so a threshold passes all of them or none (and 900 boxes make the pack's SAM
stage need more than 20 GB). Here a few queries (``DINO_FOUND_QUERIES``) always score about
``DINO_FOUND_SCORE`` and all others about ``DINO_OTHER_SCORE``, whatever the image or the caption, so
the pack's default threshold 0.3 yields exactly that many boxes, and a threshold above the found
score yields none (the pack's "nothing found" path). See ``_shape_grounding_dino``.

Cache: ``$PROMPTMATTE_WEIGHTS_CACHE`` or ``~/.cache/promptmatte/chain-weights``, then a folder named
after the SHA-256 of this file, written once per machine into a temporary sibling and renamed into
place (a killed run leaves no half cache; concurrent runs agree on the content).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterable, Mapping

CACHE_ENV = "PROMPTMATTE_WEIGHTS_CACHE"
SEED = 2026
INIT_STD = 0.02  # the authors' own init scale for linear layers and embeddings (BERT, ViT)

SAM_FILE = "sam_vit_b_01ec64.pth"
DINO_FILE = "groundingdino_swint_ogc.pth"
DINO_CONFIG_FILE = "GroundingDINO_SwinT_OGC.cfg.py"
BERT_DIR = "bert-base-uncased"
SAM2_FILE = "sam2.1_hiera_tiny.safetensors"
SD15_INPAINT_FILE = "sd-v1-5-inpainting.safetensors"

# Where each file goes under ComfyUI's models/ folder (the packs look exactly there).
MODELS_SUBDIR = {
    SAM_FILE: "sams",
    DINO_FILE: "grounding-dino",
    DINO_CONFIG_FILE: "grounding-dino",
    BERT_DIR: "",  # models/bert-base-uncased/
    SAM2_FILE: "sam2",
    SD15_INPAINT_FILE: "checkpoints",
}

# GroundingDINO shaping (see _shape_grounding_dino).
DINO_FOUND_QUERIES = (0, 1, 2)
DINO_FOUND_LOGIT = 2.5  # sigmoid -> ~0.92
DINO_OTHER_LOGIT = -2.5  # sigmoid -> ~0.08

# Words a vocab.txt must hold: the captions of the shipped workflows and tests, lower case.
BERT_WORDS = (
    "person", "people", "subject", "hair", "cat", "dog", "man", "woman", "child", "face", "animal",
    "object", "background", "foreground", "car", "bird", "horse", "plant", "flower", "tree", "chair",
    "table", "bottle", "cup", "a", "an", "the", "and", "of", "with", "in", "on",
)


# --------------------------------------------------------------------------
# layouts: name -> Tensor spec


class Spec:
    """One tensor of a layout: its shape, dtype name and how its values are made.

    ``fill`` is "normal" (INIT_STD * N(0, 1)), "ones", "zeros", a float constant, or a callable
    ``(shape) -> torch.Tensor`` for tensors whose values carry meaning (index buffers).
    """

    __slots__ = ("shape", "fill", "dtype")

    def __init__(self, shape: Iterable[int], fill="normal", dtype: str = "float32"):
        self.shape = tuple(int(s) for s in shape)
        self.fill = fill
        self.dtype = dtype

    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


class Layout(OrderedDict):
    """An ordered state-dict description with small builders for the usual modules."""

    def add(self, name: str, shape, fill="normal", dtype="float32") -> None:
        if name in self:
            raise KeyError(f"duplicate key {name}")
        self[name] = Spec(shape, fill, dtype)

    def linear(self, name: str, out_f: int, in_f: int, bias: bool = True) -> None:
        self.add(f"{name}.weight", (out_f, in_f))
        if bias:
            self.add(f"{name}.bias", (out_f,), "zeros")

    def conv(self, name: str, out_c: int, in_c: int, k: int, bias: bool = True) -> None:
        self.add(f"{name}.weight", (out_c, in_c, k, k))
        if bias:
            self.add(f"{name}.bias", (out_c,), "zeros")

    def norm(self, name: str, n: int) -> None:
        self.add(f"{name}.weight", (n,), "ones")
        self.add(f"{name}.bias", (n,), "zeros")

    def mlp(self, name: str, dims: list[int]) -> None:
        """``MLP(input, hidden, output, num_layers)`` of DETR/SAM: ``layers.i`` linears."""
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            self.linear(f"{name}.layers.{i}", b, a)

    def numel(self) -> int:
        return sum(s.numel() for s in self.values())


# --- Segment Anything ViT-B (segment_anything.build_sam_vit_b) ---------------


def _sam_prompt_encoder(lay: Layout, p: str) -> None:
    lay.add(f"{p}.pe_layer.positional_encoding_gaussian_matrix", (2, 128))
    for i in range(4):
        lay.add(f"{p}.point_embeddings.{i}.weight", (1, 256))
    lay.add(f"{p}.not_a_point_embed.weight", (1, 256))
    lay.conv(f"{p}.mask_downscaling.0", 4, 1, 2)
    lay.norm(f"{p}.mask_downscaling.1", 4)
    lay.conv(f"{p}.mask_downscaling.3", 16, 4, 2)
    lay.norm(f"{p}.mask_downscaling.4", 16)
    lay.conv(f"{p}.mask_downscaling.6", 256, 16, 1)
    lay.add(f"{p}.no_mask_embed.weight", (1, 256))


def _sam_attention(lay: Layout, p: str, dim: int = 256, internal: int = 256, kv_in: int | None = None) -> None:
    kv_in = kv_in or dim
    lay.linear(f"{p}.q_proj", internal, dim)
    lay.linear(f"{p}.k_proj", internal, kv_in)
    lay.linear(f"{p}.v_proj", internal, kv_in)
    lay.linear(f"{p}.out_proj", dim, internal)


def _sam_mask_decoder(lay: Layout, p: str, sam2: bool = False) -> None:
    t = f"{p}.transformer"
    for i in range(2):
        q = f"{t}.layers.{i}"
        _sam_attention(lay, f"{q}.self_attn")
        lay.norm(f"{q}.norm1", 256)
        _sam_attention(lay, f"{q}.cross_attn_token_to_image", internal=128)
        lay.norm(f"{q}.norm2", 256)
        if sam2:
            lay.linear(f"{q}.mlp.layers.0", 2048, 256)
            lay.linear(f"{q}.mlp.layers.1", 256, 2048)
        else:
            lay.linear(f"{q}.mlp.lin1", 2048, 256)
            lay.linear(f"{q}.mlp.lin2", 256, 2048)
        lay.norm(f"{q}.norm3", 256)
        lay.norm(f"{q}.norm4", 256)
        _sam_attention(lay, f"{q}.cross_attn_image_to_token", internal=128)
    _sam_attention(lay, f"{t}.final_attn_token_to_image", internal=128)
    lay.norm(f"{t}.norm_final_attn", 256)
    lay.add(f"{p}.iou_token.weight", (1, 256))
    lay.add(f"{p}.mask_tokens.weight", (4, 256))
    if sam2:
        lay.add(f"{p}.obj_score_token.weight", (1, 256))
    lay.add(f"{p}.output_upscaling.0.weight", (256, 64, 2, 2))
    lay.add(f"{p}.output_upscaling.0.bias", (64,), "zeros")
    lay.norm(f"{p}.output_upscaling.1", 64)
    lay.add(f"{p}.output_upscaling.3.weight", (64, 32, 2, 2))
    lay.add(f"{p}.output_upscaling.3.bias", (32,), "zeros")
    if sam2:
        lay.conv(f"{p}.conv_s0", 32, 256, 1)
        lay.conv(f"{p}.conv_s1", 64, 256, 1)
    for i in range(4):
        lay.mlp(f"{p}.output_hypernetworks_mlps.{i}", [256, 256, 256, 32])
    lay.mlp(f"{p}.iou_prediction_head", [256, 256, 256, 4])
    if sam2:
        lay.mlp(f"{p}.pred_obj_score_head", [256, 256, 256, 1])


def sam_vit_b_layout() -> Layout:
    """SAM ViT-B as in ``sam_vit_b_01ec64.pth`` (a flat state dict of ``Sam``)."""
    lay = Layout()
    dim, depth, global_blocks, window = 768, 12, (2, 5, 8, 11), 14
    e = "image_encoder"
    lay.add(f"{e}.pos_embed", (1, 64, 64, dim))
    lay.conv(f"{e}.patch_embed.proj", dim, 3, 16)
    for i in range(depth):
        b = f"{e}.blocks.{i}"
        rel = 2 * 64 - 1 if i in global_blocks else 2 * window - 1
        lay.norm(f"{b}.norm1", dim)
        lay.add(f"{b}.attn.rel_pos_h", (rel, 64))
        lay.add(f"{b}.attn.rel_pos_w", (rel, 64))
        lay.linear(f"{b}.attn.qkv", 3 * dim, dim)
        lay.linear(f"{b}.attn.proj", dim, dim)
        lay.norm(f"{b}.norm2", dim)
        lay.linear(f"{b}.mlp.lin1", 4 * dim, dim)
        lay.linear(f"{b}.mlp.lin2", dim, 4 * dim)
    lay.conv(f"{e}.neck.0", 256, dim, 1, bias=False)
    lay.norm(f"{e}.neck.1", 256)
    lay.conv(f"{e}.neck.2", 256, 256, 3, bias=False)
    lay.norm(f"{e}.neck.3", 256)
    _sam_prompt_encoder(lay, "prompt_encoder")
    _sam_mask_decoder(lay, "mask_decoder")
    return lay


# --- BERT base uncased (transformers BertModel) ------------------------------

BERT_CONFIG = {
    "architectures": ["BertForMaskedLM"],
    "attention_probs_dropout_prob": 0.1,
    "gradient_checkpointing": False,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "type_vocab_size": 2,
    "use_cache": True,
    "vocab_size": 30522,
}


def bert_layout(prefix: str = "") -> Layout:
    """``BertModel`` (with pooler) of bert-base-uncased; ``prefix`` e.g. "bert." inside GroundingDINO."""
    lay = Layout()
    h, inter, p = 768, 3072, prefix
    lay.add(f"{p}embeddings.word_embeddings.weight", (BERT_CONFIG["vocab_size"], h))
    lay.add(f"{p}embeddings.position_embeddings.weight", (512, h))
    lay.add(f"{p}embeddings.token_type_embeddings.weight", (2, h))
    lay.norm(f"{p}embeddings.LayerNorm", h)
    for i in range(12):
        b = f"{p}encoder.layer.{i}"
        lay.linear(f"{b}.attention.self.query", h, h)
        lay.linear(f"{b}.attention.self.key", h, h)
        lay.linear(f"{b}.attention.self.value", h, h)
        lay.linear(f"{b}.attention.output.dense", h, h)
        lay.norm(f"{b}.attention.output.LayerNorm", h)
        lay.linear(f"{b}.intermediate.dense", inter, h)
        lay.linear(f"{b}.output.dense", h, inter)
        lay.norm(f"{b}.output.LayerNorm", h)
    lay.linear(f"{p}pooler.dense", h, h)
    return lay


def bert_vocab() -> list[str]:
    """A vocab.txt with BERT's special tokens at their usual ids and the workflows' words.

    ids below ``vocab_size`` that the file does not list are simply never produced by the
    tokenizer; unknown words become ``[UNK]`` (GroundingDINO handles that like any word).
    """
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += list(".,?!;:'\"-()") + [str(d) for d in range(10)]
    tokens += list("abcdefghijklmnopqrstuvwxyz")
    tokens += [w for w in BERT_WORDS if w not in tokens]
    return tokens


# --- GroundingDINO SwinT OGC (storyicon's local_groundingdino) ----------------

# The published GroundingDINO_SwinT_OGC.py config (IDEA-Research/GroundingDINO), as the pack reads it.
DINO_CONFIG = OrderedDict(
    [
        ("batch_size", 1), ("modelname", "groundingdino"), ("backbone", "swin_T_224_1k"),
        ("position_embedding", "sine"), ("pe_temperatureH", 20), ("pe_temperatureW", 20),
        ("return_interm_indices", [1, 2, 3]), ("backbone_freeze_keywords", None), ("enc_layers", 6),
        ("dec_layers", 6), ("pre_norm", False), ("dim_feedforward", 2048), ("hidden_dim", 256),
        ("dropout", 0.0), ("nheads", 8), ("num_queries", 900), ("query_dim", 4), ("num_patterns", 0),
        ("num_feature_levels", 4), ("enc_n_points", 4), ("dec_n_points", 4),
        ("two_stage_type", "standard"), ("two_stage_bbox_embed_share", False),
        ("two_stage_class_embed_share", False), ("transformer_activation", "relu"),
        ("dec_pred_bbox_embed_share", True), ("dn_box_noise_scale", 1.0), ("dn_label_noise_ratio", 0.5),
        ("dn_label_coef", 1.0), ("dn_bbox_coef", 1.0), ("embed_init_tgt", True),
        ("dn_labelbook_size", 2000), ("max_text_len", 256), ("text_encoder_type", "bert-base-uncased"),
        ("use_text_enhancer", True), ("use_fusion_layer", True), ("use_checkpoint", True),
        ("use_transformer_ckpt", True), ("use_text_cross_attention", True), ("text_dropout", 0.0),
        ("fusion_dropout", 0.0), ("fusion_droppath", 0.1), ("sub_sentence_present", True),
    ]
)


def dino_config_text() -> str:
    return "".join(f"{k} = {v!r}\n" for k, v in DINO_CONFIG.items())


def _swin_relative_position_index(shape=(49, 49)) -> "torch.Tensor":
    """Swin's ``relative_position_index`` buffer for a window of sqrt(shape[0]) pixels, int64."""
    import torch

    window = round(shape[0] ** 0.5)
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += window - 1
    rel[:, :, 1] += window - 1
    rel[:, :, 0] *= 2 * window - 1
    return rel.sum(-1)


def _msdeform_attn(lay: Layout, p: str, d: int = 256, heads: int = 8, levels: int = 4, points: int = 4) -> None:
    lay.linear(f"{p}.sampling_offsets", heads * levels * points * 2, d)
    lay.linear(f"{p}.attention_weights", heads * levels * points, d)
    lay.linear(f"{p}.value_proj", d, d)
    lay.linear(f"{p}.output_proj", d, d)


def _torch_mha(lay: Layout, p: str, d: int = 256) -> None:
    lay.add(f"{p}.in_proj_weight", (3 * d, d))
    lay.add(f"{p}.in_proj_bias", (3 * d,), "zeros")
    lay.linear(f"{p}.out_proj", d, d)


def grounding_dino_layout() -> Layout:
    """The ``model`` state dict of ``groundingdino_swint_ogc.pth`` (Swin-T, BERT, 6+6 layers)."""
    lay = Layout()
    d, ffn = 256, 2048
    # Swin-T backbone: Joiner(backbone, position embedding) -> backbone.0.*
    s = "backbone.0"
    lay.conv(f"{s}.patch_embed.proj", 96, 3, 4)
    lay.norm(f"{s}.patch_embed.norm", 96)
    dims, depths, heads = (96, 192, 384, 768), (2, 2, 6, 2), (3, 6, 12, 24)
    for i, (dim, depth, nh) in enumerate(zip(dims, depths, heads)):
        for j in range(depth):
            b = f"{s}.layers.{i}.blocks.{j}"
            lay.norm(f"{b}.norm1", dim)
            lay.add(f"{b}.attn.relative_position_bias_table", (169, nh))
            lay.add(f"{b}.attn.relative_position_index", (49, 49), _swin_relative_position_index, "int64")
            lay.linear(f"{b}.attn.qkv", 3 * dim, dim)
            lay.linear(f"{b}.attn.proj", dim, dim)
            lay.norm(f"{b}.norm2", dim)
            lay.linear(f"{b}.mlp.fc1", 4 * dim, dim)
            lay.linear(f"{b}.mlp.fc2", dim, 4 * dim)
        if i < 3:
            lay.linear(f"{s}.layers.{i}.downsample.reduction", 2 * dim, 4 * dim, bias=False)
            lay.norm(f"{s}.layers.{i}.downsample.norm", 4 * dim)
    for i in (1, 2, 3):  # return_interm_indices
        lay.norm(f"{s}.norm{i}", dims[i])
    # transformer
    t = "transformer"
    lay.add(f"{t}.level_embed", (4, d))
    for i in range(6):
        e = f"{t}.encoder.layers.{i}"
        _msdeform_attn(lay, f"{e}.self_attn")
        lay.norm(f"{e}.norm1", d)
        lay.linear(f"{e}.linear1", ffn, d)
        lay.linear(f"{e}.linear2", d, ffn)
        lay.norm(f"{e}.norm2", d)
    for i in range(6):
        e = f"{t}.encoder.text_layers.{i}"
        _torch_mha(lay, f"{e}.self_attn")
        lay.linear(f"{e}.linear1", 1024, d)
        lay.linear(f"{e}.linear2", d, 1024)
        lay.norm(f"{e}.norm1", d)
        lay.norm(f"{e}.norm2", d)
    for i in range(6):
        e = f"{t}.encoder.fusion_layers.{i}"
        lay.add(f"{e}.gamma_v", (d,), 1e-4)  # the authors' layer-scale init
        lay.add(f"{e}.gamma_l", (d,), 1e-4)
        lay.norm(f"{e}.layer_norm_v", d)
        lay.norm(f"{e}.layer_norm_l", d)
        for name in ("v_proj", "l_proj", "values_v_proj", "values_l_proj"):
            lay.linear(f"{e}.attn.{name}", 1024, d)
        lay.linear(f"{e}.attn.out_v_proj", d, 1024)
        lay.linear(f"{e}.attn.out_l_proj", d, 1024)
    for i in range(6):
        e = f"{t}.decoder.layers.{i}"
        _msdeform_attn(lay, f"{e}.cross_attn")
        lay.norm(f"{e}.norm1", d)
        _torch_mha(lay, f"{e}.ca_text")
        lay.norm(f"{e}.catext_norm", d)
        _torch_mha(lay, f"{e}.self_attn")
        lay.norm(f"{e}.norm2", d)
        lay.linear(f"{e}.linear1", ffn, d)
        lay.linear(f"{e}.linear2", d, ffn)
        lay.norm(f"{e}.norm3", d)
    lay.norm(f"{t}.decoder.norm", d)
    lay.mlp(f"{t}.decoder.ref_point_head", [2 * d, d, d])
    for i in range(6):  # one MLP shared by the six decoder layers, saved under each index
        lay.mlp(f"{t}.decoder.bbox_embed.{i}", [d, d, d, 4])
    lay.add(f"{t}.tgt_embed.weight", (900, d))
    lay.linear(f"{t}.enc_output", d, d)
    lay.norm(f"{t}.enc_output_norm", d)
    lay.mlp(f"{t}.enc_out_bbox_embed", [d, d, d, 4])
    # text
    lay.update(bert_layout("bert."))
    lay.linear("feat_map", d, 768)
    # input projections of the 3 Swin levels + 1 extra strided level
    for i, c in enumerate((192, 384, 768)):
        lay.conv(f"input_proj.{i}.0", d, c, 1)
        lay.norm(f"input_proj.{i}.1", d)
    lay.conv("input_proj.3.0", d, 768, 3)
    lay.norm("input_proj.3.1", d)
    for i in range(6):
        lay.mlp(f"bbox_embed.{i}", [d, d, d, 4])
    return lay


def _shape_grounding_dino(sd: dict, found_queries=DINO_FOUND_QUERIES) -> None:
    """Make a few queries score high and the others low, for any image and caption.

    A query's score for a text token is ``sigmoid(hs_q . y_t)``: ``hs_q`` the decoder output after
    ``transformer.decoder.norm``, ``y_t`` the text feature after the last text-enhancer layer's
    ``norm2``. One channel, ``c``, is made to carry the decision:

    - the last text layer's ``norm2`` gets weight 0 and bias ``1`` in channel ``c``, so ``y_t[c] = 1``
      for every token; its other channels are zeroed too (weight 0, bias 0), so nothing else adds;
    - ``tgt_embed`` (the decoder's learned query content, ``embed_init_tgt``) gets ``+A`` in channel
      ``c`` for the found queries and ``-A`` for the others; the post-norm decoder layers keep that
      spike (their residual updates are small), and ``decoder.norm`` with weight ``w`` in channel ``c``
      and 0 elsewhere turns it into ``hs_q[c] = +-w`` (LayerNorm of a vector dominated by one spike
      gives about ``+-sqrt(D-1)`` in that channel, then scaled).

    So ``hs_q . y_t = +-w * ~sqrt(255)``; ``w`` is chosen for DINO_FOUND_LOGIT / DINO_OTHER_LOGIT.
    Boxes: the box head's last bias grows width and height a little per decoder layer so the found
    boxes are a sizeable part of the image rather than the 5 % anchors of the encoder proposals.
    """
    import torch

    c, d, spike = 0, 256, 10.0
    tgt = sd["transformer.tgt_embed.weight"]
    sign = torch.full((tgt.shape[0],), -1.0)
    sign[list(found_queries)] = 1.0
    tgt[:, c] = spike * sign
    norm = "transformer.encoder.text_layers.5.norm2"
    sd[f"{norm}.weight"].zero_()
    sd[f"{norm}.bias"].zero_()
    sd[f"{norm}.bias"][c] = 1.0
    # LayerNorm of a D-vector that is one spike of height `spike` plus noise: about sqrt(D-1) there.
    ln_peak = (d - 1) ** 0.5
    sd["transformer.decoder.norm.weight"].zero_()
    sd["transformer.decoder.norm.weight"][c] = DINO_FOUND_LOGIT / ln_peak
    sd["transformer.decoder.norm.bias"].zero_()
    for i in range(6):
        for key in (f"transformer.decoder.bbox_embed.{i}.layers.2.bias", f"bbox_embed.{i}.layers.2.bias"):
            sd[key][2:] = 0.4  # w, h logits grow by 0.4 per decoder layer


# --- SAM 2.1 hiera tiny (kijai's sam2 copy, sam2.1_hiera_t.yaml) ---------------


def sam2_hiera_tiny_layout() -> Layout:
    lay = Layout()
    for name, shape in (
        ("maskmem_tpos_enc", (7, 1, 1, 64)),
        ("no_mem_embed", (1, 1, 256)),
        ("no_mem_pos_enc", (1, 1, 256)),
        ("no_obj_ptr", (1, 256)),
        ("no_obj_embed_spatial", (1, 64)),
    ):
        lay.add(name, shape)
    # Hiera: stages [1, 2, 7, 2], embed 96 doubling per stage, heads 1 doubling per stage.
    tr = "image_encoder.trunk"
    lay.add(f"{tr}.pos_embed", (1, 96, 7, 7))
    lay.add(f"{tr}.pos_embed_window", (1, 96, 8, 8))
    lay.conv(f"{tr}.patch_embed.proj", 96, 3, 7)
    stages = (1, 2, 7, 2)
    dim, idx = 96, 0
    for stage, depth in enumerate(stages):
        for j in range(depth):
            dim_out = dim * 2 if (j == 0 and stage > 0) else dim
            b = f"{tr}.blocks.{idx}"
            lay.norm(f"{b}.norm1", dim)
            lay.linear(f"{b}.attn.qkv", 3 * dim_out, dim)
            lay.linear(f"{b}.attn.proj", dim_out, dim_out)
            lay.norm(f"{b}.norm2", dim_out)
            lay.linear(f"{b}.mlp.layers.0", 4 * dim_out, dim_out)
            lay.linear(f"{b}.mlp.layers.1", dim_out, 4 * dim_out)
            if dim_out != dim:
                lay.linear(f"{b}.proj", dim_out, dim)
            dim, idx = dim_out, idx + 1
    for i, c in enumerate((768, 384, 192, 96)):
        lay.conv(f"image_encoder.neck.convs.{i}.conv", 256, c, 1)
    lay.conv("mask_downsample", 1, 1, 4)
    for i in range(4):
        m = f"memory_attention.layers.{i}"
        _sam_attention(lay, f"{m}.self_attn")
        _sam_attention(lay, f"{m}.cross_attn_image", kv_in=64)
        lay.linear(f"{m}.linear1", 2048, 256)
        lay.linear(f"{m}.linear2", 256, 2048)
        for n in (1, 2, 3):
            lay.norm(f"{m}.norm{n}", 256)
    lay.norm("memory_attention.norm", 256)
    me = "memory_encoder"
    chans = (1, 4, 16, 64, 256)
    for i in range(4):
        lay.conv(f"{me}.mask_downsampler.encoder.{3 * i}", chans[i + 1], chans[i], 3)
        lay.norm(f"{me}.mask_downsampler.encoder.{3 * i + 1}", chans[i + 1])
    lay.conv(f"{me}.mask_downsampler.encoder.12", 256, 256, 1)
    lay.conv(f"{me}.pix_feat_proj", 256, 256, 1)
    for i in range(2):
        f = f"{me}.fuser.layers.{i}"
        lay.add(f"{f}.gamma", (256,), 1e-6)  # layer_scale_init_value of the config
        lay.add(f"{f}.dwconv.weight", (256, 1, 7, 7))
        lay.add(f"{f}.dwconv.bias", (256,), "zeros")
        lay.norm(f"{f}.norm", 256)
        lay.linear(f"{f}.pwconv1", 1024, 256)
        lay.linear(f"{f}.pwconv2", 256, 1024)
    lay.conv(f"{me}.out_proj", 64, 256, 1)
    _sam_prompt_encoder(lay, "sam_prompt_encoder")
    _sam_mask_decoder(lay, "sam_mask_decoder", sam2=True)
    # SAM 2 blanks the masks of an image where its object score is negative; a positive bias makes
    # the random model "see" an object, so a click yields a mask (the real model's usual answer).
    lay["sam_mask_decoder.pred_obj_score_head.layers.2.bias"].fill = 1.0
    lay.mlp("obj_ptr_proj", [256, 256, 256, 256])
    lay.linear("obj_ptr_tpos_proj", 64, 256)
    return lay


# --- Stable Diffusion 1.5 inpainting (LDM single-file checkpoint) -------------


def _sd_resblock(lay: Layout, p: str, cin: int, cout: int, emb: int = 1280) -> None:
    lay.norm(f"{p}.in_layers.0", cin)
    lay.conv(f"{p}.in_layers.2", cout, cin, 3)
    lay.linear(f"{p}.emb_layers.1", cout, emb)
    lay.norm(f"{p}.out_layers.0", cout)
    lay.conv(f"{p}.out_layers.3", cout, cout, 3)
    if cin != cout:
        lay.conv(f"{p}.skip_connection", cout, cin, 1)


def _sd_transformer(lay: Layout, p: str, c: int, ctx: int = 768) -> None:
    lay.norm(f"{p}.norm", c)
    lay.conv(f"{p}.proj_in", c, c, 1)
    b = f"{p}.transformer_blocks.0"
    for a, kv in (("attn1", c), ("attn2", ctx)):
        lay.linear(f"{b}.{a}.to_q", c, c, bias=False)
        lay.linear(f"{b}.{a}.to_k", c, kv, bias=False)
        lay.linear(f"{b}.{a}.to_v", c, kv, bias=False)
        lay.linear(f"{b}.{a}.to_out.0", c, c)
    lay.linear(f"{b}.ff.net.0.proj", 8 * c, c)
    lay.linear(f"{b}.ff.net.2", c, 4 * c)
    for n in (1, 2, 3):
        lay.norm(f"{b}.norm{n}", c)
    lay.conv(f"{p}.proj_out", c, c, 1)


def _sd_unet(lay: Layout, p: str, in_channels: int = 9) -> None:
    mc, mult = 320, (1, 2, 4, 4)
    lay.linear(f"{p}.time_embed.0", 1280, mc)
    lay.linear(f"{p}.time_embed.2", 1280, 1280)
    lay.conv(f"{p}.input_blocks.0.0", mc, in_channels, 3)
    chans, ch, n = [mc], mc, 1
    for level, m in enumerate(mult):
        for _ in range(2):
            _sd_resblock(lay, f"{p}.input_blocks.{n}.0", ch, m * mc)
            ch = m * mc
            if level < 3:
                _sd_transformer(lay, f"{p}.input_blocks.{n}.1", ch)
            chans.append(ch)
            n += 1
        if level < 3:
            lay.conv(f"{p}.input_blocks.{n}.0.op", ch, ch, 3)
            chans.append(ch)
            n += 1
    _sd_resblock(lay, f"{p}.middle_block.0", ch, ch)
    _sd_transformer(lay, f"{p}.middle_block.1", ch)
    _sd_resblock(lay, f"{p}.middle_block.2", ch, ch)
    n = 0
    for level, m in reversed(list(enumerate(mult))):
        for i in range(3):
            skip = chans.pop()
            _sd_resblock(lay, f"{p}.output_blocks.{n}.0", ch + skip, m * mc)
            ch = m * mc
            sub = 1
            if level < 3:
                _sd_transformer(lay, f"{p}.output_blocks.{n}.1", ch)
                sub = 2
            if level > 0 and i == 2:
                lay.conv(f"{p}.output_blocks.{n}.{sub}.conv", ch, ch, 3)
            n += 1
    lay.norm(f"{p}.out.0", mc)
    lay.conv(f"{p}.out.2", 4, mc, 3)


def _vae_resblock(lay: Layout, p: str, cin: int, cout: int) -> None:
    lay.norm(f"{p}.norm1", cin)
    lay.conv(f"{p}.conv1", cout, cin, 3)
    lay.norm(f"{p}.norm2", cout)
    lay.conv(f"{p}.conv2", cout, cout, 3)
    if cin != cout:
        lay.conv(f"{p}.nin_shortcut", cout, cin, 1)


def _vae_mid(lay: Layout, p: str, c: int = 512) -> None:
    _vae_resblock(lay, f"{p}.mid.block_1", c, c)
    lay.norm(f"{p}.mid.attn_1.norm", c)
    for n in ("q", "k", "v", "proj_out"):
        lay.conv(f"{p}.mid.attn_1.{n}", c, c, 1)
    _vae_resblock(lay, f"{p}.mid.block_2", c, c)


def _sd_vae(lay: Layout, p: str) -> None:
    mult, ch = (1, 2, 4, 4), 128
    e = f"{p}.encoder"
    lay.conv(f"{e}.conv_in", ch, 3, 3)
    cin = ch
    for i, m in enumerate(mult):
        for j in range(2):
            _vae_resblock(lay, f"{e}.down.{i}.block.{j}", cin, m * ch)
            cin = m * ch
        if i < 3:
            lay.conv(f"{e}.down.{i}.downsample.conv", cin, cin, 3)
    _vae_mid(lay, e)
    lay.norm(f"{e}.norm_out", 512)
    lay.conv(f"{e}.conv_out", 8, 512, 3)
    dd = f"{p}.decoder"
    lay.conv(f"{dd}.conv_in", 512, 4, 3)
    _vae_mid(lay, dd)
    cin = 512
    for i in reversed(range(4)):
        for j in range(3):
            _vae_resblock(lay, f"{dd}.up.{i}.block.{j}", cin, mult[i] * ch)
            cin = mult[i] * ch
        if i > 0:
            lay.conv(f"{dd}.up.{i}.upsample.conv", cin, cin, 3)
    lay.norm(f"{dd}.norm_out", ch)
    lay.conv(f"{dd}.conv_out", 3, ch, 3)
    lay.conv(f"{p}.quant_conv", 8, 8, 1)
    lay.conv(f"{p}.post_quant_conv", 4, 4, 1)


def _position_ids(shape) -> "torch.Tensor":
    import torch

    return torch.arange(shape[-1]).expand(shape)


def _clip_l(lay: Layout, p: str) -> None:
    h = 768
    lay.add(f"{p}.embeddings.token_embedding.weight", (49408, h))
    lay.add(f"{p}.embeddings.position_embedding.weight", (77, h))
    lay.add(f"{p}.embeddings.position_ids", (1, 77), _position_ids, "int64")  # saved in the SD1.5 files
    for i in range(12):
        b = f"{p}.encoder.layers.{i}"
        lay.norm(f"{b}.layer_norm1", h)
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            lay.linear(f"{b}.self_attn.{n}", h, h)
        lay.norm(f"{b}.layer_norm2", h)
        lay.linear(f"{b}.mlp.fc1", 4 * h, h)
        lay.linear(f"{b}.mlp.fc2", h, 4 * h)
    lay.norm(f"{p}.final_layer_norm", h)


def sd15_inpainting_layout() -> Layout:
    """``sd-v1-5-inpainting``: UNet with 9 input channels (latent + mask + masked-image latent)."""
    lay = Layout()
    _sd_unet(lay, "model.diffusion_model", in_channels=9)
    _sd_vae(lay, "first_stage_model")
    _clip_l(lay, "cond_stage_model.transformer.text_model")
    return lay


# --------------------------------------------------------------------------
# values


def materialize(layout: Layout, seed: int, dtype=None) -> "OrderedDict[str, object]":
    """Tensors for ``layout``; float tensors are cast to ``dtype`` when given."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    out: OrderedDict = OrderedDict()
    for name, spec in layout.items():
        tdtype = getattr(torch, spec.dtype)
        if callable(spec.fill):
            t = spec.fill(spec.shape).to(tdtype)
        elif spec.fill == "normal":
            t = torch.randn(spec.shape, generator=gen, dtype=torch.float32).mul_(INIT_STD)
        elif spec.fill == "ones":
            t = torch.ones(spec.shape, dtype=torch.float32)
        elif spec.fill == "zeros":
            t = torch.zeros(spec.shape, dtype=torch.float32)
        else:
            t = torch.full(spec.shape, float(spec.fill), dtype=torch.float32)
        if t.is_floating_point() and dtype is not None:
            t = t.to(dtype)
        elif t.is_floating_point():
            t = t.to(tdtype)
        if tuple(t.shape) != spec.shape:
            raise ValueError(f"{name}: made {tuple(t.shape)}, layout says {spec.shape}")
        out[name] = t
    return out


# --------------------------------------------------------------------------
# writers: each writes one entry into a folder


def _write_sam(folder: Path) -> None:
    import torch

    torch.save(dict(materialize(sam_vit_b_layout(), SEED + 1)), folder / SAM_FILE)


def _write_bert(folder: Path) -> None:
    from safetensors.torch import save_file

    d = folder / BERT_DIR
    d.mkdir()
    (d / "config.json").write_text(json.dumps(BERT_CONFIG, indent=2) + "\n")
    (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}) + "\n")
    (d / "vocab.txt").write_text("\n".join(bert_vocab()) + "\n")
    save_file(dict(materialize(bert_layout(), SEED + 2)), str(d / "model.safetensors"), metadata={"format": "pt"})


def _write_dino(folder: Path) -> None:
    import torch

    sd = materialize(grounding_dino_layout(), SEED + 3)
    _shape_grounding_dino(sd)
    torch.save({"model": dict(sd)}, folder / DINO_FILE)
    (folder / DINO_CONFIG_FILE).write_text(dino_config_text())


def _write_sam2(folder: Path) -> None:
    from safetensors.torch import save_file

    save_file(dict(materialize(sam2_hiera_tiny_layout(), SEED + 4)), str(folder / SAM2_FILE))


def _write_sd15(folder: Path) -> None:
    import torch
    from safetensors.torch import save_file

    # fp16 like the usual pruned release; ComfyUI upcasts on CPU.
    save_file(dict(materialize(sd15_inpainting_layout(), SEED + 5, dtype=torch.float16)), str(folder / SD15_INPAINT_FILE))


WRITERS: "OrderedDict[str, Callable[[Path], None]]" = OrderedDict(
    [
        (SAM_FILE, _write_sam),
        (BERT_DIR, _write_bert),
        (DINO_FILE, _write_dino),  # also writes DINO_CONFIG_FILE
        (SAM2_FILE, _write_sam2),
        (SD15_INPAINT_FILE, _write_sd15),
    ]
)
ENTRIES = (SAM_FILE, DINO_FILE, DINO_CONFIG_FILE, BERT_DIR, SAM2_FILE, SD15_INPAINT_FILE)


# --------------------------------------------------------------------------
# cache


def generator_hash() -> str:
    """SHA-256 of this file: any change to a layout or a value rule makes a new cache."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def cache_dir(cache_root: Path | str | None = None) -> Path:
    root = cache_root or os.environ.get(CACHE_ENV, "").strip() or Path.home() / ".cache" / "promptmatte" / "chain-weights"
    return Path(root).expanduser().resolve() / generator_hash()[:16]


def ensure(cache_root: Path | str | None = None, log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """The weights, written on first use; name -> path (a file, or the bert-base-uncased folder).

    The cache folder appears complete or not at all: everything is written into a temporary
    sibling folder, with a ``manifest.json`` (sizes, seconds per file) last, then renamed.
    """
    final = cache_dir(cache_root)
    if not (final / "manifest.json").is_file():
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        try:
            manifest = {"generator_sha256": generator_hash(), "seed": SEED, "files": {}}
            for name, write in WRITERS.items():
                t0 = time.perf_counter()
                write(tmp)
                seconds = round(time.perf_counter() - t0, 2)
                manifest["files"][name] = {"seconds": seconds}
                if log:
                    log(f"chain weights: wrote {name} in {seconds} s")
            for name in ENTRIES:
                manifest["files"].setdefault(name, {})["bytes"] = _size(tmp / name)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
            for path in [tmp, *tmp.rglob("*")]:  # mkdtemp and some writers make owner-only modes
                path.chmod(0o755 if path.is_dir() else 0o644)
            try:
                os.rename(tmp, final)
            except OSError:
                # another run finished first (the target exists and is not empty): use its copy
                if not (final / "manifest.json").is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return {name: final / name for name in ENTRIES}


def manifest(cache_root: Path | str | None = None) -> dict:
    """The cache's manifest (generation seconds and bytes per entry), after ``ensure``."""
    return json.loads((cache_dir(cache_root) / "manifest.json").read_text())


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


# --------------------------------------------------------------------------
# ComfyUI models/ layout


def install(models_dir: Path | str, files: Mapping[str, Path] | None = None, names: Iterable[str] | None = None) -> dict[str, Path]:
    """Symlink the cached weights where the packs look for them under ComfyUI's ``models/``.

    ``files`` is ``ensure()``'s result (made when omitted); ``names`` picks some entries (default
    all). Existing links to the same target are kept; anything else in the way is an error, never
    overwritten. Returns name -> link path.
    """
    files = dict(files) if files is not None else ensure()
    models = Path(models_dir)
    out = {}
    for name in names or ENTRIES:
        target = Path(files[name]).resolve()
        link = models / MODELS_SUBDIR[name] / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and link.resolve() == target:
            out[name] = link
            continue
        if link.is_symlink() or link.exists():
            raise FileExistsError(f"{link} exists and is not a link to {target}; remove it or use a fresh models folder")
        link.symlink_to(target, target_is_directory=target.is_dir())
        out[name] = link
    return out


if __name__ == "__main__":
    paths = ensure(log=print)
    for key, value in paths.items():
        print(f"{key}: {value}")
