"""Matting Anything (MAM): the family reproduces the authors' mattes and refuses what it cannot run.

Golden fixtures: tests/golden/mam (README there). The checkpoints are rebuilt from the manifest
into a temporary folder (tests/mam_golden.py), as the generator built them.
"""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from golden_cases import assert_close_to_authors
from mam_golden import write_checkpoints
from peak_memory import measure_in_child

GOLDEN = Path(__file__).resolve().parent / "golden" / "mam"
TOLERANCE = 3e-5
SINGLE_CASES = ("point1", "point3", "box", "mask")
BATCH_CASES = ("batch_point",)
_alphas: dict[str, torch.Tensor] = {}


@pytest.fixture(scope="module")
def mam(pack):
    return importlib.import_module(f"{pack.__name__}.models.mam")


@pytest.fixture(scope="module")
def checkpoint(pack):
    return importlib.import_module(f"{pack.__name__}.models.checkpoint")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return write_checkpoints(GOLDEN / "weights_manifest.json", tmp_path_factory.mktemp("mam"))


@pytest.fixture(scope="module")
def model(mam, checkpoint, files):
    weights = checkpoint.read_weights(files["mam_tiny.pth"])
    return mam.FAMILY.load(weights, source_name="mam_tiny.pth", find_companion=lambda companion: files["sam_tiny.pth"])


@pytest.fixture(scope="module")
def cases():
    return np.load(GOLDEN / "cases.npz")


def case_inputs(cases, name: str):
    images = np.load(GOLDEN / "images.npz")
    pixels = np.stack([images[str(n)] for n in cases[f"{name}.images"]])
    image = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    prompt_map = torch.zeros(image.shape[0], 1, *image.shape[-2:])
    return image, prompt_map, torch.from_numpy(cases[f"{name}.coords"]), str(cases[f"{name}.kind"])


def run_case(model, cases, name: str) -> torch.Tensor:
    if name not in _alphas:
        _alphas[name] = model(*case_inputs(cases, name))
    return _alphas[name]


@pytest.mark.parametrize("name", SINGLE_CASES)
def test_single_image_matches_the_authors(model, cases, name):
    alpha = run_case(model, cases, name)
    expected = torch.from_numpy(cases[f"{name}.alpha"])
    assert alpha.shape == (1, 1, *expected.shape[-2:]) and alpha.dtype == torch.float32
    assert_close_to_authors(alpha[:, 0], expected, TOLERANCE)
    # The fixture exercises every source of the fusion: SAM's mask, OS8, OS4 and OS1.
    for source in ("post_mask", "os8", "os4", "os1"):
        assert (expected == torch.from_numpy(cases[f"{name}.{source}"])).any()


@pytest.mark.parametrize("name", BATCH_CASES)
def test_batch_matches_the_authors(model, cases, name):
    alpha = run_case(model, cases, name)
    expected = torch.from_numpy(cases[f"{name}.alpha"])
    assert alpha.shape == (2, 1, *expected.shape[-2:])
    assert_close_to_authors(alpha[:, 0], expected, TOLERANCE)


def test_mask_prompt_is_its_bounding_box(model, cases):
    """The "mask" case's reference is the authors' box path fed the mask's bounding box."""
    _, _, coords, kind = case_inputs(cases, "mask")
    assert kind == "mask"
    mask = torch.from_numpy(cases["mask.prompt_map"]).bool()
    ys, xs = torch.nonzero(mask, as_tuple=True)
    height, width = mask.shape
    # The pack's mask convention: the nonzero pixels' bounding box with last indices.
    bbox = torch.tensor([xs.min() / width, ys.min() / height, xs.max() / width, ys.max() / height], dtype=torch.float64)
    assert torch.allclose(coords[0].double(), bbox, atol=1e-7)
    # SAM gets exactly the box prompt (so the same matte: test_single_image_matches_the_authors[mask]).
    as_mask, as_box = model._prompt(coords[0], "mask", (height, width)), model._prompt(coords[0], "box", (height, width))
    assert as_mask.keys() == as_box.keys() == {"boxes"}
    assert torch.equal(as_mask["boxes"], as_box["boxes"])


def test_other_prompt_kinds_are_refused_by_name(model, cases):
    image, prompt_map, _, _ = case_inputs(cases, "box")
    with pytest.raises(ValueError, match="point, box or mask") as error:
        model(image, prompt_map, torch.zeros(1, 4), "trimap")
    assert "trimap" in str(error.value)
    with pytest.raises(ValueError, match=r"\(B, 20\)"):
        model(image, prompt_map, torch.zeros(1, 4), "point")


def test_family_and_model_attributes(mam, model):
    assert mam.FAMILY.name == model.family == "mam"
    assert mam.FAMILY.prompt_kinds == model.prompt_kinds == ("point", "box", "mask")
    assert model.works_at_input_size is True
    assert model.device.type == "cpu" and model.dtype == torch.float32
    assert model.sam_size == "custom"  # the tiny SAM is none of the released sizes
    assert [c.file_names for c in mam.FAMILY.companions] == [("sam_vit_b_01ec64.pth",)]
    assert mam.FAMILY.companions[0].folder == "sams"


def test_spectral_norm_is_folded_as_the_authors_eval_forward_computes_it(mam, checkpoint, files, model):
    """In eval mode the authors' SpectralNorm runs no power iteration: W = W_bar / (u . W_bar v)."""
    spectral = importlib.import_module(f"{mam.__name__}.spectral_norm")
    state = checkpoint.read_weights(files["mam_tiny.pth"]).tensors
    for name in ("layer2.0.conv1", "layer3.0.upsample.1", "conv1", "layer4.0.conv2"):
        w_bar = state[f"{name}.module.weight_bar"].double()
        u, v = state[f"{name}.module.weight_u"].double(), state[f"{name}.module.weight_v"].double()
        sigma = u @ (w_bar.reshape(w_bar.shape[0], -1) @ v)
        folded = model.m2m.get_submodule(name).weight
        # sigma = u . (W v) of non-converged vectors is a sum with cancellation: float32 (the
        # authors' and ours) is within 1e-4 of float64 here.
        assert torch.allclose(folded.double(), w_bar / sigma, rtol=1e-4, atol=0)
        assert torch.equal(folded, state[f"{name}.module.weight_bar"] / spectral.spectral_sigma(*(state[f"{name}.module.weight_{s}"] for s in ("bar", "u", "v"))))
        # The stored vectors are not the converged singular vectors: a power iteration (or the
        # true spectral norm) would give another weight, so this tells the two apart.
        largest = torch.linalg.matrix_norm(w_bar.reshape(w_bar.shape[0], -1), ord=2)
        assert not torch.allclose(folded.double(), w_bar / largest, rtol=1e-3)
    # A triple with a misshapen vector is a clear error.
    broken = dict(state)
    broken["conv1.module.weight_u"] = torch.zeros(3)
    with pytest.raises(ValueError, match="conv1.module.weight_bar.*misshapen"):
        spectral.fold_spectral_norm(broken)


def test_elliptic_dilation_equals_opencv(mam):
    fusion = importlib.import_module(f"{mam.__name__}.fusion")
    recorded = np.load(GOLDEN / "morphology.npz")
    for size in (5, 10):
        assert np.array_equal(fusion.ellipse_kernel(size).numpy(), recorded[f"ellipse{size}"])
        for index in range(2):
            mask = torch.from_numpy(recorded[f"dilate{size}.{index}.input"]).bool()[None, None]
            dilated = fusion.dilate(mask, fusion.ellipse_kernel(size))[0, 0]
            assert np.array_equal(dilated.numpy().astype(np.uint8), recorded[f"dilate{size}.{index}.output"])


def test_released_checkpoint_layout_is_recognised_and_read(pack, mam):
    released = json.loads((GOLDEN / "released_shapes.json").read_text())
    m2m = {key: tuple(shape) for key, (shape, _) in released["mam_vitb_state_dict"].items()}
    assert mam.FAMILY.recognises(m2m)
    config_module = importlib.import_module(f"{mam.__name__}.config")
    config = config_module.read_m2m_config(m2m)
    assert config.stage_blocks == (3, 3, 2) and config.stage_channels == (128, 64, 32)
    assert config.embedding_channels == 256 and config.block_kernel_size == config.head_kernel_size == 3
    with torch.device("meta"):
        network = mam.MaskToMatte(config)
    trainable = sum(p.numel() for p in network.parameters())
    assert trainable == released["mam_parameter_count"]  # 2.74 M, folded weights counted once
    assert 2.7e6 < trainable < 2.8e6
    for size in ("vit_b", "vit_l", "vit_h"):
        sam = {key: tuple(shape) for key, (shape, _) in released[f"sam_{size}"].items()}
        assert not mam.FAMILY.recognises(sam)
        assert not mam.FAMILY.recognises({**sam, **m2m})  # a merged file is not the M2M module alone
    registry = importlib.import_module(f"{pack.__name__}.models.registry")
    assert registry.recognise(m2m).name == "mam"
    sam_b = {key: tuple(shape) for key, (shape, _) in released["sam_vit_b"].items()}
    with pytest.raises(ValueError, match="Segment Anything.*models/sams/"):
        registry.recognise(sam_b, "sam_vit_b_01ec64.pth")


def test_the_packs_loader_recognises_and_loads_the_training_checkpoint(pack, files):
    engine = importlib.import_module(f"{pack.__name__}.models")
    model = engine.load_matting_model(files["mam_tiny.pth"], find_companion=lambda companion: files["sam_tiny.pth"])
    assert model.family == "mam" and model.m2m.config.stage_blocks == (1, 1, 1)


def test_module_prefixed_checkpoint_loads_the_same(mam, checkpoint, files, model, tmp_path):
    payload = torch.load(files["mam_tiny.pth"], weights_only=True)
    payload["state_dict"] = {f"module.{k}": v for k, v in payload["state_dict"].items()}
    torch.save(payload, tmp_path / "prefixed.pth")
    weights = checkpoint.read_weights(tmp_path / "prefixed.pth")
    other = mam.build_m2m(weights.tensors)
    for key, value in model.m2m.state_dict().items():
        assert torch.equal(value, other.state_dict()[key]), key


def test_missing_sam_companion_says_which_file_and_where(pack, mam, checkpoint, files, tmp_path):
    family = importlib.import_module(f"{pack.__name__}.models.family")
    weights = checkpoint.read_weights(files["mam_tiny.pth"])
    for find in (None, lambda companion: None, lambda companion: tmp_path / "absent.pth"):
        with pytest.raises(family.MissingCompanionError) as error:
            mam.FAMILY.load(weights, source_name="mam_tiny.pth", find_companion=find)
        assert "sam_vit_b_01ec64.pth" in str(error.value) and "models/sams/" in str(error.value)


def test_wrong_companion_files_are_clear_errors(pack, mam, checkpoint, files, tmp_path):
    errors = importlib.import_module(f"{pack.__name__}.models.errors")
    weights = checkpoint.read_weights(files["mam_tiny.pth"])
    # The M2M file itself given as the SAM file.
    with pytest.raises(errors.CheckpointError, match="not a Segment Anything checkpoint"):
        mam.FAMILY.load(weights, find_companion=lambda companion: files["mam_tiny.pth"])
    # An M2M module that reads 128-channel embeddings cannot be paired with a 256-channel SAM.
    config = mam.M2mConfig(embedding_channels=128, stage_blocks=(1, 1, 1))
    state = mam.MaskToMatte(config).state_dict()
    for key in [k for k, v in state.items() if k.endswith(".weight") and v.dim() == 4 and not k.startswith("refine_")]:
        weight = state.pop(key)
        prefix = key[: -len("weight")]
        state[prefix + "module.weight_bar"] = weight
        state[prefix + "module.weight_u"] = torch.ones(weight.shape[0]) / weight.shape[0] ** 0.5
        state[prefix + "module.weight_v"] = torch.ones(weight[0].numel()) / weight[0].numel() ** 0.5
    narrow = checkpoint.read_weights({"state_dict": state})
    assert mam.FAMILY.recognises({k: tuple(v.shape) for k, v in narrow.tensors.items()})
    with pytest.raises(errors.CheckpointError, match="256-channel image embeddings.*reads 128"):
        mam.FAMILY.load(narrow, source_name="narrow.pth", find_companion=lambda companion: files["sam_tiny.pth"])


_PEAK_SCRIPT = textwrap.dedent(
    """
    import importlib, json, re, sys, torch
    torch.set_num_threads(1)
    mam = importlib.import_module("{pack}.models.mam")
    checkpoint = importlib.import_module("{pack}.models.checkpoint")
    model = mam.FAMILY.load(checkpoint.read_weights({m2m!r}), find_companion=lambda c: {sam!r})
    image = torch.rand(1, 3, {height}, {width})
    coords = torch.tensor([[0.2, 0.2, 0.8, 0.9]])
    measured = forward_peak(lambda: model(image, torch.zeros(1, 1, {height}, {width}), coords, "box"))
    print(json.dumps({{"measured": measured, "estimate": model.inference_memory_bytes(1, {height}, {width})}}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc: Linux only")
def test_inference_memory_estimate_is_within_twice_the_measured_peak(pack, files):
    script = _PEAK_SCRIPT.format(pack=pack.__name__, m2m=str(files["mam_tiny.pth"]), sam=str(files["sam_tiny.pth"]), height=300, width=400)
    numbers = measure_in_child(pack, script, timeout=300)
    assert numbers["measured"] / 2 <= numbers["estimate"] <= numbers["measured"] * 2, numbers


def test_a_new_prompt_on_the_same_image_reuses_its_embedding(mam, checkpoint, files, cases):
    """The interactive loop (click, look, click again): SAM's image embedding is computed once per
    image, the mattes stay the authors' and bit-identical to a fresh pass, and the store forgets
    it when the pixels or the weights change."""
    fresh = mam.FAMILY.load(
        checkpoint.read_weights(files["mam_tiny.pth"]), source_name="mam_tiny.pth",
        find_companion=lambda companion: files["sam_tiny.pth"],
    )
    # point3 and box are prompts on the same portrait image.
    first = fresh(*case_inputs(cases, "point3"))
    assert fresh.embedding_cache.hits == 0 and len(fresh.embedding_cache) == 1
    warm = fresh(*case_inputs(cases, "box"))
    assert fresh.embedding_cache.hits == 1
    for name, alpha in (("point3", first), ("box", warm)):
        assert float((alpha[:, 0] - torch.from_numpy(cases[f"{name}.alpha"])).abs().max()) <= TOLERANCE
    fresh.embedding_cache.clear()
    assert torch.equal(fresh(*case_inputs(cases, "box")), warm)

    image, prompt_map, coords, kind = case_inputs(cases, "box")
    nudged = image.clone()
    nudged[0, 1, 40, 50] += 1 / 255  # one 8-bit step in one channel of one pixel
    hits = fresh.embedding_cache.hits
    fresh(nudged, prompt_map, coords, kind)
    assert fresh.embedding_cache.hits == hits  # other pixels: encoded anew

    # New weights (ComfyUI patches and reloads through load_state_dict): the store empties.
    state = {k: v.clone() for k, v in fresh.state_dict().items()}
    state["sam.image_encoder.neck.0.weight"] *= 1.5
    fresh.load_state_dict(state)
    assert len(fresh.embedding_cache) == 0
    assert not torch.equal(fresh(image, prompt_map, coords, kind), warm)
    fresh.to(torch.float64)
    assert len(fresh.embedding_cache) == 0  # a new dtype (or device): stale embeddings go
