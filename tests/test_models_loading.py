"""Every supported checkpoint format loads to the same model; every bad file gets a clear error."""

from __future__ import annotations

import importlib
import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from golden_cases import golden_case
from tiny_models import ldm_sd15_like_state_dict, tiny_sd2_state_dict

GOLDEN = "sdmatte_tiny"


@pytest.fixture(scope="module")
def engine(pack):
    return importlib.import_module(f"{pack.__name__}.models")


@pytest.fixture(scope="module")
def golden_state(golden_dir):
    return load_file(str(golden_dir / GOLDEN / "model.safetensors"))


@pytest.fixture(scope="module")
def box_case(golden_dir):
    return golden_case(golden_dir / GOLDEN, "bbox_mask.trans0")


def _matches_reference(model, box_case, tolerance=2e-4) -> bool:
    args, expected = box_case
    return float((model(*args)[0, 0] - expected).abs().max()) <= tolerance


def _save_hf_folder(state: dict, folder) -> None:
    for component in ("unet", "vae", "text_encoder"):
        (folder / component).mkdir(parents=True)
        part = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(component + ".")}
        name = "model.safetensors" if component == "text_encoder" else "diffusion_pytorch_model.safetensors"
        save_file(part, str(folder / component / name))
    (folder / "text_encoder" / "config.json").write_text(json.dumps({"num_attention_heads": 2}))


@pytest.mark.parametrize(
    "layout",
    ["safetensors", "detectron2_pth", "state_dict_pt", "module_prefix_ckpt", "flat_pth", "hf_folder", "in_memory"],
)
def test_every_format_loads_the_same_model(engine, golden_dir, golden_state, box_case, tmp_path, layout):
    if layout == "safetensors":
        source = golden_dir / GOLDEN / "model.safetensors"
    elif layout == "detectron2_pth":  # the released files: weights under "model", with trainer keys beside
        source = tmp_path / "SDMatte.pth"
        torch.save({"model": golden_state, "iteration": 12345, "__author__": "x"}, source)
    elif layout == "state_dict_pt":
        source = tmp_path / "model.pt"
        torch.save({"state_dict": golden_state}, source)
    elif layout == "module_prefix_ckpt":
        source = tmp_path / "model.ckpt"
        torch.save({"model": {f"module.{k}": v for k, v in golden_state.items()}}, source)
    elif layout == "flat_pth":
        source = tmp_path / "flat.pth"
        torch.save(golden_state, source)
    elif layout == "hf_folder":
        source = tmp_path / "SDMatte"
        _save_hf_folder(golden_state, source)
    else:
        source = dict(golden_state)
    model = engine.load_matting_model(source)
    assert model.family == "sdmatte"
    assert _matches_reference(model, box_case)


def test_loading_builds_no_random_weights(engine, golden_dir):
    """Modules are built on the meta device and assigned: the global RNG is never drawn from."""
    before = torch.random.get_rng_state()
    engine.load_matting_model(golden_dir / GOLDEN / "model.safetensors")
    assert torch.equal(before, torch.random.get_rng_state())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(engine, golden_dir, golden_state, box_case, dtype):
    model = engine.load_matting_model(golden_dir / GOLDEN / "model.safetensors", dtype=dtype)
    assert model.dtype == dtype
    # The autoencoder runs in fp32 with the file's own values, never rounded through half precision.
    for key, value in model.vae.state_dict().items():
        assert value.dtype == torch.float32 and torch.equal(value, golden_state[f"vae.{key}"]), key
    args, expected = box_case
    alpha = model(*args)
    assert alpha.dtype == torch.float32 and alpha.shape == (1, 1, 128, 128)
    assert float((alpha[0, 0] - expected).abs().mean()) < 0.02


def test_device_argument_and_output_device(engine, golden_dir, box_case):
    model = engine.load_matting_model(golden_dir / GOLDEN / "model.safetensors", device="cpu")
    args, _ = box_case
    assert model(*args).device.type == "cpu" and model.device.type == "cpu"


def test_text_encoder_is_not_part_of_the_compute_module(engine, golden_dir):
    """Moving the model moves the UNet and VAE only; the caption embedding is precomputed."""
    model = engine.load_matting_model(golden_dir / GOLDEN / "model.safetensors")
    assert not any(k.startswith("text_encoder") for k in model.state_dict())
    assert model.empty_caption.shape == (1, 77, 32)
    embedding = model.captions("")
    assert torch.equal(model.empty_caption, embedding)


def test_caption_without_comfyui_tokenizer_is_a_clear_error(engine, golden_dir, box_case, monkeypatch):
    import sys

    text = importlib.import_module(engine.__name__ + ".sdmatte.text")
    text._comfyui_tokenizer.cache_clear()
    monkeypatch.setitem(sys.modules, "comfy", None)  # as in a plain Python without ComfyUI
    model = engine.load_matting_model(golden_dir / GOLDEN / "model.safetensors")
    args, _ = box_case
    with pytest.raises(ValueError, match="tokenizer"):
        model(*args, caption="a cat")
    text._comfyui_tokenizer.cache_clear()


def test_caption_tokens_follow_sd2(engine, comfy_path, monkeypatch):
    """With ComfyUI's vocabulary: BOS, the words, EOS, then "!" (id 0) padding to 77."""
    monkeypatch.syspath_prepend(str(comfy_path))
    text = importlib.import_module(engine.__name__ + ".sdmatte.text")
    ids = text.caption_token_ids("a cat", 77)[0].tolist()
    assert ids[:4] == [49406, 320, 2368, 49407]
    assert ids[4:] == [0] * 73
    assert text.caption_token_ids("", 77)[0].tolist() == [49406, 49407] + [0] * 75


def test_non_square_inputs(engine, golden_dir):
    model = engine.load_matting_model(golden_dir / "litesdmatte_tiny" / "model.safetensors")
    image = torch.rand(1, 3, 64, 136)
    prompt = torch.zeros(1, 1, 64, 136)
    prompt[..., 16:48, 40:100] = 1
    alpha = model(image, prompt, torch.tensor([[0.3, 0.25, 0.75, 0.75]]), "box", torch.tensor([False]))
    assert alpha.shape == (1, 1, 64, 136)
    assert 0 <= float(alpha.min()) and float(alpha.max()) <= 1


def test_token_grid_follows_strided_convs(engine):
    attention = importlib.import_module(engine.__name__ + ".sdmatte.attention")
    assert attention.token_grid((17, 9), 17 * 9) == (17, 9)
    assert attention.token_grid((17, 9), 9 * 5) == (9, 5)
    assert attention.token_grid((17, 9), 5 * 3) == (5, 3)


def test_bad_model_inputs_are_named(engine, golden_dir):
    model = engine.load_matting_model(golden_dir / "litesdmatte_tiny" / "model.safetensors")
    image, prompt = torch.rand(1, 3, 64, 64), torch.ones(1, 1, 64, 64)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.rand(1, 3, 60, 64), torch.ones(1, 1, 60, 64), torch.zeros(1, 4), "box", torch.tensor([False]))
    with pytest.raises(ValueError, match=r"coords for kind 'point'"):
        model(image, prompt, torch.zeros(1, 4), "point", torch.tensor([False]))
    with pytest.raises(ValueError, match="unknown prompt kind"):
        model(image, prompt, torch.zeros(1, 4), "scribble", torch.tensor([False]))


# ---------------------------------------------------------------- errors


def _error(engine, source) -> str:
    with pytest.raises(engine.CheckpointError) as caught:
        engine.load_matting_model(source)
    return str(caught.value)


def test_plain_sd2_unet_is_named(engine):
    message = _error(engine, tiny_sd2_state_dict())
    assert "plain Stable Diffusion 2 UNet" in message and "weight processing" in message


def test_sd15_checkpoint_is_named(engine, tmp_path):
    path = tmp_path / "v1-5-pruned.safetensors"
    save_file(ldm_sd15_like_state_dict(), str(path))
    assert "SD1.5 checkpoint" in _error(engine, path)


def test_unrelated_file_is_not_a_matting_checkpoint(engine, tmp_path):
    path = tmp_path / "resnet.safetensors"
    save_file({"fc.weight": torch.zeros(2, 2), "conv1.weight": torch.zeros(1, 1, 1, 1)}, str(path))
    assert "not a matting checkpoint" in _error(engine, path)


def test_missing_tensor_is_named(engine, golden_state):
    state = dict(golden_state)
    del state["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"]
    message = _error(engine, state)
    assert "missing 1 tensors" in message and "attn1.to_q.weight" in message


def test_unexpected_tensor_is_named(engine, golden_state):
    state = dict(golden_state, **{"unet.extra_head.weight": torch.zeros(3)})
    message = _error(engine, state)
    assert "unexpected" in message and "unet.extra_head.weight" in message


def test_truncated_safetensors_is_a_clean_error(engine, golden_dir, tmp_path):
    path = tmp_path / "cut.safetensors"
    data = (golden_dir / GOLDEN / "model.safetensors").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in _error(engine, path)


@pytest.mark.parametrize("head", [b"", b"\x80\x02", b"\x80\x87", b"PK\x03\x04"], ids=["random", "pickle-v2", "pickle-like", "zip"])
def test_corrupt_pth_is_a_clean_error(engine, tmp_path, head):
    """Garbage, also behind a pickle or zip signature, is reported as corrupt, never as a refused pickle."""
    path = tmp_path / "garbage.pth"
    for seed in range(8):
        path.write_bytes(head + np.random.default_rng(seed).bytes(4096 - len(head)))
        assert "truncated or corrupt" in _error(engine, path)


class _Payload:
    """Unpickling this object would create a file: the loader must never do it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused(engine, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "SDMatte.pth"
    with open(path, "wb") as f:
        torch.save({"model": {"unet.conv_in.weight": torch.zeros(1)}, "evil": _Payload(marker)}, f)
    message = _error(engine, path)
    assert "refused" in message
    assert not marker.exists()


def test_missing_file(engine, tmp_path):
    assert "not found" in _error(engine, tmp_path / "nope.safetensors")


def test_hf_folder_without_weights(engine, tmp_path):
    for component in ("unet", "vae", "text_encoder"):
        (tmp_path / component).mkdir()
    assert "no weights file" in _error(engine, tmp_path)


def test_pickle_module_is_not_used_for_safetensors(engine, golden_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    engine.load_matting_model(golden_dir / GOLDEN / "model.safetensors")


def test_copied_checkpoint_shares_nothing_with_the_source(engine, golden_dir, tmp_path, box_case):
    """A loaded model keeps working after its file is gone (no lazy reads)."""
    path = tmp_path / "copy.safetensors"
    shutil.copy(golden_dir / GOLDEN / "model.safetensors", path)
    model = engine.load_matting_model(path)
    path.unlink()
    assert _matches_reference(model, box_case)


def test_caption_is_embedded_on_demand_and_changes_the_matte(engine, golden_dir, box_case, comfy_path, monkeypatch):
    monkeypatch.syspath_prepend(str(comfy_path))
    model = engine.load_matting_model(golden_dir / GOLDEN / "model.safetensors")
    args, _ = box_case
    plain = model(*args)
    captioned = model(*args, caption="a cat")
    assert float((plain - captioned).abs().max()) > 1e-4
    assert torch.equal(captioned, model(*args, caption="a cat"))
    assert torch.equal(plain, model(*args, caption=""))


def test_fully_masked_prompt_equals_unmasked_attention(engine, golden_dir):
    """An all-zero prompt map biases every key alike: the pruned path must keep all keys."""
    model = engine.load_matting_model(golden_dir / "litesdmatte_tiny" / "model.safetensors")
    args = (torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64), torch.tensor([[0.0, 0.0, 0.0, 0.0]]), "mask", torch.tensor([False]))
    fused = model(*args)
    model.use_reference_attention(True)
    assert float((fused - model(*args)).abs().max()) <= 1e-5
