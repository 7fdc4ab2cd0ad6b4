"""SEMat: the family reproduces the authors' mattes, merges LoRA as peft computes it, and refuses
what it cannot run.

Golden fixtures: tests/golden/semat (README there), made by tools/make_semat_golden.py from the
authors' code with a reduced random model; the checkpoints are rebuilt here from the manifests
(tests/semat_golden.py) exactly as the generator filled them.
"""

from __future__ import annotations

import copy
import importlib
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from semat_golden import build_state, write_checkpoint
from peak_memory import measure_in_child

GOLDEN = Path(__file__).resolve().parent / "golden" / "semat"
TOLERANCE = 3e-5
_runs: dict[str, tuple] = {}


@pytest.fixture(scope="module")
def semat(pack):
    return importlib.import_module(f"{pack.__name__}.models.semat")


@pytest.fixture(scope="module")
def checkpoint(pack):
    return importlib.import_module(f"{pack.__name__}.models.checkpoint")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("semat")
    return {variant: write_checkpoint(GOLDEN / f"manifest_{variant}.json", folder / f"semat_{variant}_tiny.pth") for variant in ("sam", "hq")}


@pytest.fixture(scope="module")
def models(semat, checkpoint, files):
    return {variant: semat.FAMILY.load(checkpoint.read_weights(path), source_name=path.name) for variant, path in files.items()}


def case_inputs(name: str):
    record = np.load(GOLDEN / f"{name}.npz")
    count = record["boxes"].shape[0]
    pixels = np.stack([np.asarray(Image.open(GOLDEN / f"{name}_{i}.png").convert("RGB")) for i in range(count)])
    image = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    height, width = image.shape[-2:]
    boxes = record["boxes"].astype(np.float64)
    coords = torch.tensor(boxes / [width, height, width, height], dtype=torch.float32)
    prompt_map = torch.zeros(count, 1, height, width)
    for i, (x1, y1, x2, y2) in enumerate(record["boxes"]):
        prompt_map[i, 0, y1:y2, x1:x2] = 1
    return image, prompt_map, coords, record


def run(model, name: str, kind: str = "box"):
    """(alpha at input size, the 1024² alphas the detail decoder gave, golden record); once per case."""
    if name not in _runs:
        image, prompt_map, coords, record = case_inputs(name)
        frames = []
        hook = model.detail_decoder.register_forward_hook(lambda module, args, output: frames.append(output))
        try:
            alpha = model(image, prompt_map, coords, kind, torch.zeros(image.shape[0], dtype=torch.bool))
        finally:
            hook.remove()
        _runs[name] = (alpha, torch.cat(frames), record)
    return _runs[name]


def check_against_golden(alpha, frames, record, height, width):
    h, w = (int(v) for v in record["frame_size"])
    cropped = frames[:, :, :h, :w]
    strided = float((cropped[:, :, ::4, ::4] - torch.from_numpy(record["alpha_strided"])).abs().max())
    wy, wx = (int(v) for v in record["window_origin"])
    window = torch.from_numpy(record["alpha_window"])
    windowed = float((cropped[:, :, wy : wy + window.shape[-2], wx : wx + window.shape[-1]] - window).abs().max())
    assert strided <= TOLERANCE and windowed <= TOLERANCE, f"max-abs {strided:.2e} (every 4th pixel), {windowed:.2e} (window)"
    # The fixture is not a flat matte: a constant output would hide a wrong input.
    assert float(torch.from_numpy(record["alpha_strided"]).std()) > 0.01
    # Back to the input size: bilinear, align_corners False, from the crop of the resized area.
    assert alpha.shape == (frames.shape[0], 1, height, width) and alpha.dtype == torch.float32
    expected = F.interpolate(cropped, size=(height, width), mode="bilinear", align_corners=False).clamp(0, 1)
    assert torch.equal(alpha, expected)


def test_single_image_box_matches_the_authors(models):
    alpha, frames, record = run(models["sam"], "sam_single")
    assert frames.shape == (1, 1, 1024, 1024)
    check_against_golden(alpha, frames, record, 240, 320)


def test_batch_matches_the_authors(models):
    alpha, frames, record = run(models["sam"], "sam_batch")
    assert frames.shape[0] == 2
    check_against_golden(alpha, frames, record, 200, 256)


def test_hq_sam_variant_with_auto_prompt_matches_the_authors(models):
    model = models["hq"]
    assert model.variant == "hq-sam" and models["sam"].variant == "sam"
    alpha, frames, record = run(model, "hq_auto", kind="auto")  # the golden box is the whole image
    check_against_golden(alpha, frames, record, 256, 200)


def test_boxes_reach_the_frame_as_the_authors_scale_them(models):
    model = models["sam"]
    for name in ("sam_single", "sam_batch", "hq_auto"):
        image, _, coords, record = case_inputs(name)
        height, width = image.shape[-2:]
        boxes = model.frame_boxes(coords, "box", height, width, image.shape[0])
        assert torch.equal(boxes, torch.from_numpy(record["frame_boxes"]))
    # A mask gives its bounding box with last indices: the same box as its end-exclusive one.
    image, _, coords, record = case_inputs("sam_single")
    last = torch.from_numpy(record["boxes"]).double() - torch.tensor([0, 0, 1, 1])
    mask_coords = (last / torch.tensor([320, 240, 320, 240])).float()
    assert torch.equal(model.frame_boxes(mask_coords, "mask", 240, 320, 1), torch.from_numpy(record["frame_boxes"]))
    # "auto": the whole image's last indices (199, 255) scaled by 4 and rounded; the box mask
    # stops before them (the authors' slice int(y1):int(y2)).
    auto = model.frame_boxes(None, "auto", 256, 200, 1)
    assert auto.tolist() == [[0.0, 0.0, 796.0, 1020.0]]
    mask = model.box_mask(auto)[0, 0]
    assert mask[:1020, :796].all() and not mask[1020:].any() and not mask[:, 796:].any()


def test_other_prompt_kinds_are_refused_by_name(models):
    image, prompt_map, coords, _ = case_inputs("sam_single")
    for kind in ("point", "trimap"):
        with pytest.raises(ValueError, match="box, mask, auto") as error:
            models["sam"](image, prompt_map, torch.zeros(1, 20), kind)
        assert repr(kind) in str(error.value)
    with pytest.raises(ValueError, match=r"one box per image as coords \(B, 4\)"):
        models["sam"](image, prompt_map, torch.zeros(2, 4), "box")
    with pytest.raises(ValueError, match=r"RGB image batch"):
        models["sam"](image[:, :1], prompt_map, coords, "box")


def test_family_attributes(semat, models):
    model = models["sam"]
    assert semat.FAMILY.name == model.family == "semat"
    assert semat.FAMILY.prompt_kinds == model.prompt_kinds == ("box", "mask", "auto")
    assert model.works_at_input_size is True and semat.FAMILY.companions == ()
    assert model.device.type == "cpu" and model.dtype == torch.float32
    config = model.config
    assert (config.sam.embed_dim, config.sam.depth, config.sam.num_heads) == (128, 8, 2)
    assert config.sam.global_attn_indexes == (1, 3, 5, 7) and config.sam.window_size == 14
    assert config.matting.matting_token_count == 3 and config.box_embed_channels == 4
    assert config.detail.stem_channels == (16, 32) and config.detail.stem_kernel == 13
    assert config.detail.input_channels == 6 and config.detail.down_kernel == 5 and config.detail.stages_per_block == 2


# ----------------------------------------------------------------------------- LoRA


def _peft_reference(base: torch.nn.Module, a: torch.Tensor, b: torch.Tensor, x: torch.Tensor, scale: float) -> torch.Tensor:
    """peft's unmerged forward in float64: base(x) + scale * B(A(x))."""
    base = base.double()
    if isinstance(base, torch.nn.Linear):
        return base(x) + scale * F.linear(F.linear(x, a.double()), b.double())
    down = F.conv2d(x, a.double(), stride=base.stride)
    return base(x) + scale * F.conv2d(down, b.double())


@pytest.mark.parametrize("layout", ["base_layer", "older_peft"])
def test_lora_is_merged_as_peft_computes_it(semat, checkpoint, files, models, layout):
    lora = importlib.import_module(f"{semat.__name__}.lora")
    state = checkpoint.read_weights(files["sam"]).tensors
    prefix = "sam_model.image_encoder.base_model.model."
    if layout == "older_peft":  # peft < 0.7: base weights kept their own names, no adapter name
        state = {k.replace(".base_layer.", ".").replace(".default.weight", ".weight"): v for k, v in state.items()}
        assert f"{prefix}blocks.0.attn.qkv.weight" in state and f"{prefix}blocks.0.attn.qkv.lora_A.weight" in state
        model = semat.build_semat(state)
        for key, value in models["sam"].state_dict().items():
            assert torch.equal(value, model.state_dict()[key]), key
    base = "base_layer." if layout == "base_layer" else ""
    adapter = ".default" if layout == "base_layer" else ""
    encoder = models["sam"].encoder
    torch.manual_seed(0)
    for module_name, x in (("blocks.3.attn.qkv", torch.randn(5, 128)), ("blocks.0.attn.proj", torch.randn(5, 128)), ("patch_embed.proj", torch.randn(1, 3, 32, 48))):
        a = state[f"{prefix}{module_name}.lora_A{adapter}.weight"]
        b = state[f"{prefix}{module_name}.lora_B{adapter}.weight"]
        assert a.shape[0] == 16  # rank 16, alpha 16: scale 1
        original = encoder.get_submodule(module_name)
        unmerged = type(original)(*_ctor_args(original))
        unmerged.load_state_dict({"weight": state[f"{prefix}{module_name}.{base}weight"], "bias": state[f"{prefix}{module_name}.{base}bias"]})
        expected = _peft_reference(unmerged, a, b, x.double(), lora.LORA_ALPHA / a.shape[0])
        merged = copy.deepcopy(original).double()(x.double())
        assert torch.allclose(merged, expected, rtol=0, atol=1e-5), float((merged - expected).abs().max())
        # And the merge changed the weight: the adapters are not zero in the fixture.
        assert not torch.equal(original.weight, state[f"{prefix}{module_name}.{base}weight"])


def _ctor_args(module: torch.nn.Module) -> tuple:
    if isinstance(module, torch.nn.Linear):
        return (module.in_features, module.out_features)
    return (module.in_channels, module.out_channels, module.kernel_size, module.stride)


def test_broken_lora_factors_are_a_clear_error(pack, semat, checkpoint, files):
    errors = importlib.import_module(f"{pack.__name__}.models.errors")
    state = dict(checkpoint.read_weights(files["sam"]).tensors)
    key = "sam_model.image_encoder.base_model.model.blocks.2.attn.qkv.lora_B.default.weight"
    state[key] = torch.zeros(384, 8)
    with pytest.raises(errors.CheckpointError, match=r"LoRA factors .*\(16, 128\).*\(384, 8\)"):
        semat.build_semat(state)
    del state[key]
    with pytest.raises(errors.CheckpointError, match="blocks.2.attn.qkv.*lora_B missing"):
        semat.build_semat(state)


# ----------------------------------------------------------------------------- recognising files


def _shapes(variant: str) -> dict[str, tuple]:
    manifest = json.loads((GOLDEN / f"manifest_{variant}.json").read_text())
    return {key: tuple(shape) for key, shape, _ in manifest["tensors"]}


def test_recogniser_reads_names_and_shapes(pack, semat):
    registry = importlib.import_module(f"{pack.__name__}.models.registry")
    for variant in ("sam", "hq"):
        shapes = _shapes(variant)
        assert semat.FAMILY.recognises(shapes)
        assert (semat.HQ_TOKEN_KEY in shapes) == (variant == "hq")
        assert registry.recognise(shapes, f"semat_{variant}_tiny.pth").name == "semat"
    shapes = _shapes("sam")
    plain_sam = {k[len("sam_model.") :]: v for k, v in shapes.items() if k.startswith("sam_model.") and "matting" not in k}
    assert not semat.FAMILY.recognises(plain_sam)
    no_box = {k: v for k, v in shapes.items() if not k.startswith("condition_layer.")}
    assert not semat.FAMILY.recognises(no_box)
    three_channel = dict(shapes, **{"condition_layer.patch_embed.proj.weight": (128, 3, 16, 16)})
    assert not semat.FAMILY.recognises(three_channel)


def test_released_layouts_are_recognised_and_read(semat):
    released = json.loads((GOLDEN / "released_shapes.json").read_text())
    for variant, expected_hq in (("SEMat_SAM", False), ("SEMat_HQ-SAM", True)):
        shapes = {key: tuple(shape) for key, shape in released[variant]["shapes"].items()}
        assert semat.FAMILY.recognises(shapes)
        config = semat.read_semat_config(shapes)
        assert config.matting.has_hq_token is expected_hq
        assert (config.sam.embed_dim, config.sam.depth, config.sam.num_heads) == (1024, 24, 16)
        assert config.sam.global_attn_indexes == (5, 11, 17, 23)
        assert config.detail.down_channels == (32, 64, 128, 256) and config.detail.up_channels == (128, 64, 32, 16)
        with torch.device("meta"):
            model = semat.SematModel(config)
        ours = sum(p.numel() for p in model.parameters())
        # Ours leaves out the LoRA factors (merged), SAM's unused IoU/mask heads are kept, and
        # nothing else: the authors' count less the LoRA factors.
        assert ours == released[variant]["parameters"] - released[variant]["lora_parameters"], (ours, released[variant])
        assert 3.2e8 < ours < 3.5e8


def test_sam2_variant_is_recognised_and_refused_clearly(semat):
    shapes = {k: v for k, v in _shapes("sam").items() if not k.startswith("condition_layer.")}
    shapes["sam_model.image_encoder.trunk.bbox_mask_patch_embed.proj.weight"] = (144, 1, 7, 7)
    assert semat.FAMILY.recognises(shapes)
    with pytest.raises(ValueError, match=r"SEMat \(SAM2\).*SEMat_SAM.pth or SEMat_HQ-SAM.pth"):
        semat.read_semat_config(shapes)


def test_incomplete_and_damaged_files_are_clear_errors(pack, semat, checkpoint, files, tmp_path):
    errors = importlib.import_module(f"{pack.__name__}.models.errors")
    state = dict(checkpoint.read_weights(files["sam"]).tensors)
    del state["matting_decoder.up_blks.1.res_layer.weight"]
    with pytest.raises(errors.CheckpointError, match="up_blks|detail decoder"):
        semat.FAMILY.load(checkpoint.read_weights({"model": state}), source_name="cut.pth")
    state = dict(checkpoint.read_weights(files["sam"]).tensors)
    del state["sam_model.mask_decoder.matting_hf_mlp.layers.1.weight"]
    with pytest.raises(errors.CheckpointError, match=r"cut.pth: .*missing mask_decoder.matting_branch.token_mlp.layers.1.weight"):
        semat.FAMILY.load(checkpoint.read_weights({"model": state}), source_name="cut.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(files["sam"].read_bytes()[: 1 << 20])
    with pytest.raises(errors.CheckpointError, match="truncated or corrupt"):
        checkpoint.read_weights(truncated)


def test_the_packs_loader_recognises_and_loads_both_variants(pack, files):
    engine = importlib.import_module(f"{pack.__name__}.models")
    for variant, path in files.items():
        model = engine.load_matting_model(path)
        assert model.family == "semat" and model.variant == ("hq-sam" if variant == "hq" else "sam")


def test_rebuilt_checkpoint_is_detectron2s_layout(files):
    payload = torch.load(files["sam"], weights_only=True, mmap=True)
    assert set(payload) == {"model", "trainer", "iteration"}
    assert "condition_layer.patch_embed.proj.weight" in payload["model"]
    assert any(k.endswith("attn.qkv.base_layer.weight") for k in payload["model"])
    manifest = json.loads((GOLDEN / "manifest_sam.json").read_text())
    assert list(payload["model"]) == [key for key, _, _ in manifest["tensors"]]
    assert all(torch.equal(v, payload["model"][k]) for k, v in list(build_state(manifest).items())[:3])


# ----------------------------------------------------------------------------- memory

_PEAK_SCRIPT = textwrap.dedent(
    """
    import importlib, json, torch
    torch.set_num_threads(1)
    semat = importlib.import_module("{pack}.models.semat")
    checkpoint = importlib.import_module("{pack}.models.checkpoint")
    model = semat.FAMILY.load(checkpoint.read_weights({path!r}))
    image = torch.rand(1, 3, {height}, {width})
    coords = torch.tensor([[0.2, 0.2, 0.8, 0.9]])
    # No warm-up pass (each costs ~10 s of CPU at the fixed 1024² frame): the measured peak of a
    # first forward also holds its one-time allocations (allocator arenas, oneDNN primitives),
    # what a user's first run needs.
    measured = forward_peak(lambda: model(image, None, coords, "box"))
    print(json.dumps({{"measured": measured, "estimate": model.inference_memory_bytes(1, {height}, {width})}}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc: Linux only")
def test_inference_memory_estimate_is_within_twice_the_measured_peak(pack, files):
    script = _PEAK_SCRIPT.format(pack=pack.__name__, path=str(files["sam"]), height=300, width=400)
    numbers = measure_in_child(pack, script, timeout=600)
    print(numbers)
    assert numbers["measured"] / 2 <= numbers["estimate"] <= numbers["measured"] * 2, numbers
