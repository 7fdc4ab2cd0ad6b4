"""AIM (models/aim): the authors' Hybrid inference reproduced on golden cases, its resizes, files and errors.

The golden cases (tests/golden/aim, made by tools/make_aim_golden.py) are the authors' own
``inference_img`` run with random weights in a reduced network (fewer residual blocks). The
checkpoint is rebuilt here from manifest.json by the fill rule of tests/golden/aim/README.md, in
the released file's layout (``{'state_dict'}``, ``resnet.*`` and ``encoderN.*`` copies, ``resnet.fc``).
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aim_golden import _digest, _fill, write_checkpoint
from golden_cases import assert_close_to_authors
from peak_memory import measure_in_child

GOLDEN = Path(__file__).resolve().parent / "golden" / "aim"
TOLERANCE = 3e-5
CHECKPOINT = "aimnet_pretrained_matting.pth"


@pytest.fixture(scope="module")
def aim(pack):
    return importlib.import_module(f"{pack.__name__}.models.aim")


@pytest.fixture(scope="module")
def engine(pack):
    return importlib.import_module(f"{pack.__name__}.models")


@pytest.fixture(scope="module")
def manifest():
    return json.loads((GOLDEN / "manifest.json").read_text())


@pytest.fixture(scope="module")
def checkpoint(manifest, tmp_path_factory) -> Path:
    """The reduced checkpoint in the released layout, rebuilt from the manifest."""
    return write_checkpoint(tmp_path_factory.mktemp("aim") / CHECKPOINT)


@pytest.fixture(scope="module")
def model(aim, pack, checkpoint):
    read_weights = importlib.import_module(f"{pack.__name__}.models.checkpoint").read_weights
    weights = read_weights(checkpoint)
    return aim.FAMILY.load(weights, source_name=CHECKPOINT, device="cpu", dtype=None, find_companion=None)


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN / "cases.npz")


@pytest.fixture(scope="module")
def resize_cases():
    return np.load(GOLDEN / "resize_cases.npz")


def _image(name: str) -> torch.Tensor:
    """A golden input as the pipeline hands it over: (1, 3, H, W) float in [0, 1]."""
    pixels = np.array(Image.open(GOLDEN / "images" / f"{name}.png").convert("RGB"))
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255.0


# ----------------------------------------------------------------------------- parity


def test_fill_rule_rebuilds_the_generators_weights(manifest):
    state = _fill(manifest)
    assert _digest(state) == manifest["weights_digest"]
    # The shared backbone appears twice, as in the released file, as one tensor.
    assert state["encoder2.0.conv1.weight"] is state["resnet.layer2.0.conv1.weight"]
    assert "resnet.fc.weight" in state


@pytest.mark.parametrize("name", ["single0", "single1"])
def test_single_image_matches_the_authors_run(model, golden, name):
    image = _image(name)
    alpha = model(image, torch.zeros_like(image[:, :1]), torch.zeros(1, 4), "auto", torch.zeros(1, dtype=torch.bool))
    expected = torch.from_numpy(golden[f"{name}.alpha"])
    assert alpha.shape == (1, 1, *expected.shape) and alpha.dtype == torch.float32
    assert_close_to_authors(alpha[0, 0], expected, TOLERANCE)
    # Not a degenerate case: the authors' trimap has unknown pixels and decided ones.
    trimap = golden[f"{name}.trimap_quarter"]
    assert (trimap == 128).any() and ((trimap == 0) | (trimap == 255)).any()


def test_shorter_side_over_1080_matches_the_authors_run(model, golden):
    """1100x1088: OpenCV's resize to 1091x1080, the Hybrid run there, the alpha resized back.

    The authors' alpha is stored at every 7th row and column and the 64x64 corners.
    """
    image = _image("large0")
    alpha = model(image, None, None, "auto")[0, 0]
    assert alpha.shape == (1100, 1088)
    for part, expected in (
        (alpha[::7, ::7], golden["large0.alpha_sampled"]),
        (alpha[:64, :64], golden["large0.alpha_top_left"]),
        (alpha[-64:, -64:], golden["large0.alpha_bottom_right"]),
    ):
        assert_close_to_authors(part, expected, TOLERANCE)


def test_semantic_trimap_is_the_authors(model, aim, golden):
    """The 1/4-scale run's argmax trimap, pixel for pixel (it decides where the detail is used)."""
    hybrid = importlib.import_module(f"{aim.__name__}.hybrid")
    for name in ("single0", "single1", "batch0", "batch1"):
        image = torch.round(_image(name) * 255).to(torch.uint8)
        sizes = hybrid.hybrid_sizes(*image.shape[-2:])
        assert sizes.working == tuple(image.shape[-2:])
        with torch.inference_mode():
            trimap = model.semantic_trimap(model._network_input(image, sizes.semantic))
        assert np.array_equal(trimap[0].numpy(), golden[f"{name}.trimap_quarter"]), name


def test_batch_matches_the_authors_run_image_by_image(model, golden):
    images = torch.cat([_image("batch0"), _image("batch1")])
    alpha = model(images, torch.zeros_like(images[:, :1]), torch.zeros(2, 4), "auto", torch.zeros(2, dtype=torch.bool))
    expected = torch.stack([torch.from_numpy(golden[f"batch{i}.alpha"]) for i in range(2)])
    assert_close_to_authors(alpha[:, 0], expected, TOLERANCE)


# ----------------------------------------------------------------------------- the resizes


def test_skimage_resize_is_bit_exact(aim, resize_cases):
    resize = importlib.import_module(f"{aim.__name__}.resize")
    image = torch.from_numpy(resize_cases["sk.image"]).permute(2, 0, 1)
    for key in [k for k in resize_cases.files if k.startswith("sk.image.")]:
        out = resize.skimage_resize(image, *map(int, key.split(".")[-1].split("x")))
        assert np.array_equal(out.permute(1, 2, 0).numpy(), resize_cases[key]), key
    trimap = torch.from_numpy(resize_cases["sk.trimap"])
    for key in [k for k in resize_cases.files if k.startswith("sk.trimap.")]:
        out = (resize.skimage_resize(trimap, *map(int, key.split(".")[-1].split("x"))) * 255.0).numpy()
        expected = resize_cases[key]
        # What the fusion reads: which pixels are exactly background / foreground.
        assert np.array_equal(out == 255, expected == 255) and np.array_equal(out == 0, expected == 0), key
        assert np.array_equal(out, expected), key
    local = resize.skimage_resize(torch.from_numpy(resize_cases["sk.local"]), 100, 150)
    assert np.array_equal(local.numpy(), resize_cases["sk.local.100x150"])


def test_skimage_transform_is_estimated_as_the_pinned_version_does(aim, resize_cases):
    resize = importlib.import_module(f"{aim.__name__}.resize")
    for (in_h, in_w, out_h, out_w), expected in zip(resize_cases["sk.transform.sizes"], resize_cases["sk.transform.params"]):
        ours = resize.skimage_resize_transform((int(in_h), int(in_w)), (int(out_h), int(out_w)))
        assert np.array_equal(np.array(ours), expected), (in_h, in_w, out_h, out_w, np.array(ours) - expected)


def test_opencv_resizes_are_reproduced(aim, resize_cases):
    resize = importlib.import_module(f"{aim.__name__}.resize")
    image = torch.from_numpy(resize_cases["cv.image"]).permute(2, 0, 1)
    for key in [k for k in resize_cases.files if k.startswith("cv.image.")]:
        out = resize.cv2_resize_uint8(image, *map(int, key.split(".")[-1].split("x")))
        assert np.array_equal(out.permute(1, 2, 0).numpy(), resize_cases[key]), key
    # The float64 resize (the alpha brought back after the 1080 rule) goes through Intel IPP in
    # OpenCV's wheels, which sums in its own order: equal to 1e-10 on the 0-255 scale.
    alpha = torch.from_numpy(resize_cases["cv.alpha"])
    for key in [k for k in resize_cases.files if k.startswith("cv.alpha.")]:
        out = resize.cv2_resize_float(alpha, *map(int, key.split(".")[-1].split("x")))
        assert np.abs(out.numpy() - resize_cases[key]).max() <= 1e-10, key


def test_opencv_exact_halving_is_the_rounded_2x2_mean(aim):
    resize = importlib.import_module(f"{aim.__name__}.resize")
    image = torch.tensor([[[0, 1, 10, 20], [2, 2, 30, 41]]], dtype=torch.uint8)
    assert resize.cv2_resize_uint8(image, 1, 2).tolist() == [[[(0 + 1 + 2 + 2 + 2) >> 2, (10 + 20 + 30 + 41 + 2) >> 2]]]


# ----------------------------------------------------------------------------- sizes and rules


def test_hybrid_sizes_follow_the_authors_rules(aim):
    hybrid = importlib.import_module(f"{aim.__name__}.hybrid")
    # Under 1080 on the shorter side: the image's own size; 1/4 and 1/2 floored to 32.
    assert hybrid.hybrid_sizes(200, 300) == ((200, 300), (32, 64), (96, 128))
    assert hybrid.hybrid_sizes(333, 257) == ((333, 257), (64, 64), (160, 128))
    # Shorter side over 1080: to 1080, the longer int(1080 * long / short).
    assert hybrid.hybrid_sizes(2160, 3840) == ((1080, 1920), (256, 480), (512, 960))
    assert hybrid.hybrid_sizes(1500, 1100) == ((1472, 1080), (352, 256), (736, 512))
    assert hybrid.working_size(1080, 5000) == (1080, 5000)  # exactly 1080 is kept
    # The cap: a 1/2-scale side never exceeds 1600.
    assert hybrid.hybrid_sizes(1080, 4000).detail == (512, 1600)


def test_images_under_128_px_are_refused_with_what_to_do(model):
    for height, width in ((127, 400), (400, 100)):
        with pytest.raises(ValueError, match="at least 128 px"):
            model(torch.rand(1, 3, height, width), None, None, "auto")
    assert model(torch.rand(1, 3, 128, 128), None, None, "auto").shape == (1, 1, 128, 128)


@pytest.mark.parametrize("kind", ["point", "box", "mask", "trimap"])
def test_prompts_are_refused_with_the_families_that_take_them(model, kind):
    with pytest.raises(ValueError, match="takes no prompt") as raised:
        model(torch.rand(1, 3, 160, 160), torch.zeros(1, 1, 160, 160), torch.zeros(1, 4), kind)
    message = str(raised.value)
    assert "disconnect" in message and "AIM" not in message.split(":", 1)[1]
    # Only families that take this prompt are named (from the registry, so always current).
    if kind == "trimap":
        assert "SIM" in message and "MAM" not in message
    if kind == "point":
        assert "MAM" in message and "SIM" not in message


# ----------------------------------------------------------------------------- the file


def test_released_layout_is_recognised_and_loaded_with_one_log_line(aim, pack, checkpoint, caplog):
    checkpoint_module = importlib.import_module(f"{pack.__name__}.models.checkpoint")
    weights = checkpoint_module.read_weights(checkpoint)
    shapes = {key: tuple(value.shape) for key, value in weights.tensors.items()}
    assert aim.FAMILY.recognises(shapes)
    assert aim.FAMILY.prompt_kinds == ("auto",) and aim.CHECKPOINT_FILE in aim.FAMILY.looks_like
    with caplog.at_level(logging.INFO, logger="PromptMatte"):
        model = aim.FAMILY.load(weights, source_name=CHECKPOINT, device="cpu", dtype=None, find_companion=None)
    lines = [r.getMessage() for r in caplog.records if r.name == "PromptMatte" and "AIM" in r.getMessage()]
    assert len(lines) == 1 and "resnet.fc" in lines[0]
    assert model.config.blocks == (2, 1, 2, 1)
    assert model.family == "aim" and model.prompt_kinds == ("auto",) and model.works_at_input_size
    assert model.device.type == "cpu" and model.dtype == torch.float32
    # The loaded backbone is the file's tensor (one copy), not a re-initialised one.
    assert torch.equal(model.backbone.layer2[0].conv1.weight, weights.tensors["resnet.layer2.0.conv1.weight"])


def test_other_files_are_not_recognised(aim, manifest):
    shapes = {key: tuple(entry["shape"]) for key, entry in manifest["tensors"].items()}
    assert not aim.FAMILY.recognises({k: v for k, v in shapes.items() if k != "decoder0_g_spatial.weight"})
    assert not aim.FAMILY.recognises({**shapes, "decoder0_g_spatial.weight": (1, 3, 7, 7)})
    assert not aim.FAMILY.recognises({"encoder.conv1.weight": (64, 11, 3, 3), "fc.weight": (20, 2048)})


def test_the_imagenet_backbone_file_is_named_for_what_it_is(aim, manifest):
    backbone = {key[len("resnet."):]: tuple(e["shape"]) for key, e in manifest["tensors"].items() if key.startswith("resnet.")}
    assert not aim.FAMILY.recognises(backbone)
    assert "r34mp_pretrained_imagenet" in aim.FAMILY.diagnose(backbone) and aim.CHECKPOINT_FILE in aim.FAMILY.diagnose(backbone)
    assert aim.FAMILY.diagnose({key: tuple(e["shape"]) for key, e in manifest["tensors"].items()}) is None


def test_a_file_keeping_only_the_encoder_copy_loads_the_same(aim, pack, manifest, model, tmp_path):
    """safetensors cannot store a tensor twice: a conversion keeps one copy; either copy works."""
    state = {k: v for k, v in _fill(manifest).items() if not k.startswith("resnet.")}
    path = tmp_path / "aim_encoder_copy.pth"
    torch.save(state, path)
    weights = importlib.import_module(f"{pack.__name__}.models.checkpoint").read_weights(path)
    other = aim.FAMILY.load(weights, source_name=path.name, device="cpu", dtype=None, find_companion=None)
    for (name, ours), (_, theirs) in zip(model.state_dict().items(), other.state_dict().items()):
        assert torch.equal(ours, theirs), name


def test_a_truncated_network_is_a_checkpoint_error(aim, pack, manifest, tmp_path):
    state = {k: v for k, v in _fill(manifest).items() if not k.startswith("decoder2_l.")}
    path = tmp_path / CHECKPOINT
    torch.save({"state_dict": state}, path)
    errors = importlib.import_module(f"{pack.__name__}.models.errors")
    weights = importlib.import_module(f"{pack.__name__}.models.checkpoint").read_weights(path)
    with pytest.raises(errors.CheckpointError, match="missing decoder2_l"):
        aim.FAMILY.load(weights, source_name=CHECKPOINT, device="cpu", dtype=None, find_companion=None)


# ----------------------------------------------------------------------------- memory

_PEAK_SCRIPT = textwrap.dedent(
    """
    import importlib, json, sys, torch
    aim = importlib.import_module("{pack}.models.aim")
    read_weights = importlib.import_module("{pack}.models.checkpoint").read_weights
    model = aim.FAMILY.load(read_weights(sys.argv[1]), source_name="aim", device="cpu", dtype=None, find_companion=None)
    torch.set_num_threads(2)
    model(torch.rand(1, 3, 128, 128), None, None, "auto")  # warm-up: weights paged in, allocator arenas
    peaks = [forward_peak(lambda: model(torch.rand(1, 3, {height}, {width}), None, None, "auto")) for _ in range(2)]
    print(json.dumps({{"peaks": peaks, "estimate": model.inference_memory_bytes(1, {height}, {width})}}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc: Linux only")
def test_memory_estimate_is_within_2x_of_the_measured_peak(pack, checkpoint):
    height, width = 384, 480
    measured = measure_in_child(pack, _PEAK_SCRIPT.format(pack=pack.__name__, height=height, width=width), checkpoint)
    # every pass, not the smallest: each must be within 2x of what the model asks ComfyUI for
    assert all(measured["estimate"] / 2 <= peak <= measured["estimate"] * 2 for peak in measured["peaks"]), measured
