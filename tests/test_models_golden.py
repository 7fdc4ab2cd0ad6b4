"""The engine reproduces the authors' SDMatte / LiteSDMatte outputs on the golden fixtures."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch

GOLDEN_MODELS = ("sdmatte_tiny", "litesdmatte_tiny", "litesdmatte_tiny_nomid")
# golden case name -> our prompt kind
CASE_KINDS = {"point_mask": "point", "bbox_mask": "box", "mask": "mask", "trimap": "trimap", "auto_mask": "auto"}
TOLERANCE = 2e-5  # the fixtures README: as exact as the reference's own float32
_models: dict = {}


@pytest.fixture(scope="module")
def engine(pack):
    """The pack's ``models`` package (the engine), imported without ComfyUI."""
    return importlib.import_module(f"{pack.__name__}.models")


@pytest.fixture(params=GOLDEN_MODELS)
def golden_model(request, engine, golden_dir):
    name = request.param
    if name not in _models:
        _models[name] = engine.load_matting_model(golden_dir / name / "model.safetensors")
    cases = np.load(golden_dir / name / "cases.npz")
    return name, _models[name], cases


def test_family_is_read_from_the_autoencoder(golden_model):
    name, model, _ = golden_model
    assert model.family == ("sdmatte" if name.startswith("sdmatte") else "litesdmatte")
    assert model.dtype == torch.float32 and model.device.type == "cpu"


@pytest.mark.parametrize("transparent", [False, True], ids=["opaque", "transparent"])
@pytest.mark.parametrize("case", list(CASE_KINDS))
def test_single_image_matches_reference(golden_model, case, transparent):
    _, model, cases = golden_model
    prefix = f"{case}.trans{int(transparent)}."
    alpha = model(
        torch.from_numpy(cases["image"])[None],
        torch.from_numpy(cases[prefix + "map"])[None, None],
        torch.from_numpy(cases[prefix + "coords"])[None],
        CASE_KINDS[case],
        torch.tensor([transparent]),
    )
    assert alpha.shape == (1, 1, 128, 128)
    error = float((alpha[0, 0] - torch.from_numpy(cases[prefix + "alpha"])).abs().max())
    assert error <= TOLERANCE, f"max-abs {error:.2e}"


def test_batch_matches_reference(golden_model):
    _, model, cases = golden_model
    alpha = model(
        torch.from_numpy(cases["batch2.image"]),
        torch.from_numpy(cases["batch2.map"])[:, None],
        torch.from_numpy(cases["batch2.coords"]),
        "box",
        torch.from_numpy(cases["batch2.is_trans"]).bool(),
    )
    error = float((alpha[:, 0] - torch.from_numpy(cases["batch2.alpha"])).abs().max())
    assert error <= TOLERANCE, f"max-abs {error:.2e}"


def test_the_attention_mask_and_opacity_flag_matter(golden_model):
    """Guards the parity tests: dropping the prompt bias or flipping the flag must move alpha."""
    _, model, cases = golden_model
    image = torch.from_numpy(cases["image"])[None]
    prompt = torch.from_numpy(cases["bbox_mask.trans0.map"])[None, None]
    coords = torch.from_numpy(cases["bbox_mask.trans0.coords"])[None]
    opaque = model(image, prompt, coords, "box", torch.tensor([False]))
    flipped = model(image, prompt, coords, "box", torch.tensor([True]))
    unmasked = model(image, prompt, coords, "trimap", torch.tensor([False]))  # same map, no attention bias
    assert float((opaque - flipped).abs().max()) > 1e-3
    assert float((opaque - unmasked).abs().max()) > 1e-3


def test_reference_attention_formulation_agrees(golden_model):
    """The fused SDPA path equals the authors' materialised-softmax formulation."""
    _, model, cases = golden_model
    args = (
        torch.from_numpy(cases["image"])[None],
        torch.from_numpy(cases["point_mask.trans0.map"])[None, None],
        torch.from_numpy(cases["point_mask.trans0.coords"])[None],
        "point",
        torch.tensor([False]),
    )
    fused = model(*args)
    model.use_reference_attention(True)
    try:
        materialised = model(*args)
    finally:
        model.use_reference_attention(False)
    assert float((fused - materialised).abs().max()) <= 1e-5


def test_architecture_is_read_from_shapes(engine, golden_dir):
    """What the loader infers from tensor shapes agrees with each fixture's arch.json."""
    from safetensors import safe_open

    infer = engine.sdmatte.architecture.infer_architecture
    for name in GOLDEN_MODELS:
        expected = json.loads((golden_dir / name / "arch.json").read_text())
        with safe_open(str(golden_dir / name / "model.safetensors"), "pt") as f:
            arch = infer({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})
        unet, want = arch.unet, expected["unet"]
        assert list(unet.block_out_channels) == want["block_out_channels"]
        assert list(unet.down_block_types) == want["down_block_types"]
        assert list(unet.up_block_types) == want["up_block_types"]
        assert set(unet.layers_per_block) == {want["layers_per_block"]}
        assert unet.has_mid_block == (want["mid_block_type"] is not None)
        heads = [max(1, c // 64) for c in unet.block_out_channels]
        assert heads == want["attention_head_dim"]
        # per-block cross-attention widths: text width for attention blocks, the last one feeds the mid block
        cross = want["cross_attention_dim"]
        for block_type, dim, want_dim in zip(unet.down_block_types, unet.down_cross_attention_dims, cross):
            assert dim == (want_dim if block_type.startswith("CrossAttn") else None)
        if unet.has_mid_block:
            assert unet.mid_cross_attention_dim == cross[-1]
        assert unet.use_linear_projection == want["use_linear_projection"]
        assert unet.in_channels == 8 and unet.out_channels == want["out_channels"]
        assert unet.bbox_embedding_input_dim == want["bbox_embeddings_input_dim"]
        assert unet.point_embedding_input_dim == want["point_embeddings_input_dim"]
        vae = expected["vae"]
        if vae["_class_name"] == "AutoencoderTiny":
            assert arch.family == "litesdmatte"
            assert list(arch.vae.encoder_block_out_channels) == vae["encoder_block_out_channels"]
            assert list(arch.vae.num_encoder_blocks) == vae["num_encoder_blocks"]
            assert list(arch.vae.decoder_block_out_channels) == vae["decoder_block_out_channels"]
            assert list(arch.vae.num_decoder_blocks) == vae["num_decoder_blocks"]
        else:
            assert arch.family == "sdmatte"
            assert list(arch.vae.block_out_channels) == vae["block_out_channels"]
            assert arch.vae.layers_per_block == vae["layers_per_block"]
        assert arch.vae.scaling_factor == vae["scaling_factor"]
        text = expected["text_encoder"]
        for field in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"):
            assert getattr(arch.text_encoder, field) == text[field], field


def test_leaving_out_silenced_keys_is_exact(golden_model, engine, golden_dir, monkeypatch):
    """Self-attention leaves out the keys the prompt's bias silences (weight exp(-1000) or less,
    which is 0 in float64 as in float32). In float64, where float32's rounding noise does not hide
    a small change, the alphas equal those of attending to every key (measured: 6e-15; leaving out
    keys 10 below the largest bias instead of 1000 moves them by 2e-12), for a click, a box and a
    batch of two boxes."""
    name, _, cases = golden_model
    model = engine.load_matting_model(golden_dir / name / "model.safetensors").double()
    calls = [
        (cases["image"][None], cases["point_mask.trans0.map"][None, None], cases["point_mask.trans0.coords"][None], "point", [False]),
        (cases["image"][None], cases["bbox_mask.trans0.map"][None, None], cases["bbox_mask.trans0.coords"][None], "box", [False]),
        (cases["batch2.image"], cases["batch2.map"][:, None], cases["batch2.coords"], "box", cases["batch2.is_trans"].astype(bool)),
    ]
    for image, prompt, coords, kind, transparent in calls:
        args = (torch.from_numpy(image).double(), torch.from_numpy(prompt).double(), torch.from_numpy(coords).double())
        args += (kind, torch.tensor(transparent))
        bias = engine.sdmatte.attention.prompt_attention_bias(args[1], torch.float64)
        tokens = bias[0, 0].numel()
        kept, index = engine.sdmatte.attention.PromptKeys(bias, len(model.unet.down_blocks)).for_tokens(tokens)
        assert index is not None and kept.shape[-1] < tokens, kind  # keys are left out at the first level
        dropped = model(*args)
        with monkeypatch.context() as patch:
            patch.setattr(engine.sdmatte.attention, "PRUNE_MARGIN", float("inf"))  # every key kept
            every_key = model(*args)
        assert float((dropped - every_key).abs().max()) <= 1e-13, (kind, float((dropped - every_key).abs().max()))
