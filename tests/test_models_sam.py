"""Our Segment Anything reproduces the authors' SamPredictor on the golden fixtures (tests/golden/sam/).

The tiny checkpoint is rebuilt from the committed manifest by the fill rule of
tools/make_sam_golden.py (repeated below) and checked against its recorded SHA-256, then saved as
the released files are (a flat state dict, torch.save) and read back through the pack's loader.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from peak_memory import measure_in_child

GOLDEN = Path(__file__).resolve().parent / "golden" / "sam"
TOLERANCE = 3e-5  # max-abs, float32 (tests/golden/sam/README.md)
EMBEDDING_SUFFIXES = (
    "point_embeddings.0.weight",
    "point_embeddings.1.weight",
    "point_embeddings.2.weight",
    "point_embeddings.3.weight",
    "not_a_point_embed.weight",
    "no_mask_embed.weight",
    "iou_token.weight",
    "mask_tokens.weight",
)
PROMPT_CASES = ("point1", "points3", "box", "box_point")


def fill_state_dict(shapes: dict, seed: int) -> dict:
    """The fill rule of tools/make_sam_golden.py (and the README), word for word."""
    generator = torch.Generator().manual_seed(seed)
    filled = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        x = torch.randn(shape, generator=generator, dtype=torch.float32)
        if key.endswith(EMBEDDING_SUFFIXES) or key.endswith("positional_encoding_gaussian_matrix"):
            value = x
        elif key.endswith(".weight") and len(shape) == 1:
            value = 1 + 0.1 * x
        elif key.endswith(".bias") or key.endswith("pos_embed") or ".rel_pos_" in key:
            value = 0.1 * x
        else:
            value = x / float(np.sqrt(np.prod(shape[1:])))
        filled[key] = value
    return filled


def digest(state: dict) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].contiguous().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def sam(pack):
    return importlib.import_module(f"{pack.__name__}.models.sam")


@pytest.fixture(scope="module")
def checkpoint_module(pack):
    return importlib.import_module(f"{pack.__name__}.models.checkpoint")


@pytest.fixture(scope="module")
def manifest():
    return json.loads((GOLDEN / "manifest.json").read_text())


@pytest.fixture(scope="module")
def cases():
    return dict(np.load(GOLDEN / "cases.npz"))


@pytest.fixture(scope="module")
def checkpoint_path(manifest, tmp_path_factory):
    state = fill_state_dict({key: shape for key, shape, _ in manifest["tensors"]}, manifest["fill_seed"])
    assert digest(state) == manifest["sha256"], "the fill rule no longer rebuilds the golden checkpoint"
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def model(sam, checkpoint_module, checkpoint_path):
    weights = checkpoint_module.read_weights(checkpoint_path)
    return sam.build_sam(weights.tensors)


def image_tensor(name: str) -> torch.Tensor:
    """The golden PNG as the pipeline hands it over: (1, 3, H, W) float in [0, 1] (value / 255)."""
    pixels = np.array(Image.open(GOLDEN / f"image_{name}.png").convert("RGB"))
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255


def max_abs(ours: torch.Tensor, theirs: np.ndarray) -> float:
    assert tuple(ours.shape) == theirs.shape
    return float((ours.detach().float() - torch.from_numpy(theirs)).abs().max())


def test_tiny_config_is_read_from_the_shapes(sam, model, manifest):
    tiny = manifest["config"]
    config = model.config
    assert (config.embed_dim, config.depth, config.num_heads) == (
        tiny["encoder_embed_dim"],
        tiny["encoder_depth"],
        tiny["encoder_num_heads"],
    )
    assert config.global_attn_indexes == tuple(tiny["encoder_global_attn_indexes"])
    assert (config.window_size, config.patch_size, config.image_size) == (14, 16, 1024)
    assert (config.prompt_embed_dim, config.out_chans, config.mask_in_chans) == (32, 32, 8)
    assert (config.decoder_depth, config.decoder_mlp_dim, config.iou_head_depth, config.iou_head_hidden_dim) == (2, 128, 3, 32)
    assert sam.size_name(config) == "custom"


@pytest.mark.parametrize("size", ["vit_b", "vit_l", "vit_h"])
def test_official_sizes_are_read_from_the_shapes(sam, size):
    """The key -> shape maps of the authors' build_sam_vit_b/l/h (built on the meta device)."""
    official = sam.OFFICIAL_CONFIGS[size]
    shapes = {key: tuple(shape) for key, shape in json.loads((GOLDEN / "official_shapes.json").read_text())[size].items()}
    assert sam.looks_like_sam(shapes)
    assert sam.read_sam_config(shapes) == official
    assert sam.size_name(sam.read_sam_config(shapes)) == size
    nested = {f"seg_model.{key}": shape for key, shape in shapes.items()}
    assert sam.read_sam_config(nested, prefix="seg_model.") == official
    with torch.device("meta"):
        ours = {key: tuple(value.shape) for key, value in sam.SamModel(official).state_dict().items()}
    assert ours == shapes


def test_weights_are_assigned_not_copied(model, checkpoint_module, checkpoint_path, sam):
    weights = checkpoint_module.read_weights(checkpoint_path)
    built = sam.build_sam(weights.tensors)
    key = "image_encoder.blocks.0.attn.qkv.weight"
    assert built.image_encoder.blocks[0].attn.qkv.weight.data_ptr() == weights.tensors[key].data_ptr()
    assert not any(t.is_meta for t in list(built.parameters()) + list(built.buffers()))


@pytest.mark.parametrize("name", ["small", "large"])
def test_resize_is_the_authors_pil_resize_bit_for_bit(sam, model, cases, name):
    transforms = importlib.import_module(sam.__name__ + ".transforms")
    image = image_tensor(name)
    resized = transforms.resize_longest_side(transforms.to_uint8(image), 1024)
    assert tuple(resized.shape[-2:]) == tuple(cases[f"resized_{name}_shape"][:2])
    digest_ours = hashlib.sha256(resized[0].permute(1, 2, 0).contiguous().numpy().tobytes()).digest()
    assert digest_ours == cases[f"resized_{name}_sha256"].tobytes()


def test_preprocess_shape_rounding(sam):
    transforms = importlib.import_module(sam.__name__ + ".transforms")
    assert transforms.get_preprocess_shape(150, 220) == (698, 1024)
    assert transforms.get_preprocess_shape(1060, 700) == (1024, 676)
    assert transforms.get_preprocess_shape(1024, 1024) == (1024, 1024)
    assert transforms.get_preprocess_shape(3, 2048) == (2, 1024)  # 1.5 rounds half up


def test_image_embedding(model, cases):
    padded, input_size = model.preprocess(image_tensor("small"))
    assert input_size == tuple(cases["input_size_small"])
    with torch.inference_mode():
        embedding = model.image_encoder(padded)
    assert max_abs(embedding[0, :, ::2, ::2], cases["embedding_small_sub2"]) < TOLERANCE


def test_batched_encoder_and_global_features(sam, model, cases):
    transforms = importlib.import_module(sam.__name__ + ".transforms")
    inputs = []
    for name in ("small", "large"):
        resized = transforms.resize_longest_side(transforms.to_uint8(image_tensor(name)))
        inputs.append(model.preprocess_uint8(resized))
    with torch.inference_mode():
        embedding, global_features = model.image_encoder(torch.cat(inputs), return_global_features=True)
    assert max_abs(embedding[:, :, ::4, ::4], cases["batch_embedding_sub4"]) < TOLERANCE
    assert len(global_features) == 2
    for index, features in zip(model.config.global_attn_indexes, global_features):
        assert features.shape == (2, 64, 64, model.config.embed_dim)
        assert max_abs(features[:, ::4, ::4], cases[f"batch_global_block{index}_sub4"]) < TOLERANCE


def test_inference_sums_in_place_give_the_same_bits_and_leave_the_input_alone(model):
    """Under inference the blocks add their residuals in place (no new 64x64 map per sum): the same
    values as the autograd path, and neither the tokens passed in nor earlier features change."""
    tokens = torch.randn(1, 64, 64, model.config.embed_dim, generator=torch.Generator().manual_seed(7))
    before = tokens.clone()
    block = model.image_encoder.blocks[model.config.global_attn_indexes[0]]
    with torch.inference_mode():
        in_place = block(tokens)
    # Grad mode on (the out-of-place sums), nothing to track: attention picks the same kernel.
    wanted = [parameter.requires_grad for parameter in block.parameters()]
    block.requires_grad_(False)
    try:
        with torch.enable_grad():
            out_of_place = block(tokens)
    finally:
        for parameter, flag in zip(block.parameters(), wanted):
            parameter.requires_grad_(flag)
    assert torch.equal(tokens, before)
    assert torch.equal(in_place, out_of_place)


@pytest.fixture(scope="module")
def small_embedding(model):
    padded, input_size = model.preprocess(image_tensor("small"))
    with torch.inference_mode():
        return model.image_encoder(padded), input_size


@pytest.mark.parametrize("case", PROMPT_CASES)
def test_prompt_cases(sam, model, cases, small_embedding, case):
    transforms = importlib.import_module(sam.__name__ + ".transforms")
    embedding, input_size = small_embedding
    original = (150, 220)
    coords = labels = boxes = None
    if f"{case}__point_coords" in cases:
        coords = transforms.scale_coords(torch.from_numpy(cases[f"{case}__point_coords"]), original)[None]
        labels = torch.from_numpy(cases[f"{case}__point_labels"]).int()[None]
    if f"{case}__box" in cases:
        boxes = transforms.scale_boxes(torch.from_numpy(cases[f"{case}__box"]), original)[None]
    multimask = bool(cases[f"{case}__multimask_output"])
    with torch.inference_mode():
        low_res, iou = model.predict(embedding, coords, labels, boxes, multimask_output=multimask)
    assert low_res.shape[1] == (3 if multimask else 1)
    assert max_abs(low_res[0], cases[f"{case}__low_res_logits"]) < TOLERANCE
    assert max_abs(iou[0], cases[f"{case}__iou"]) < TOLERANCE
    if f"{case}__mask_logits" in cases:
        masks = model.postprocess_masks(low_res, input_size, original)
        assert max_abs(masks[0], cases[f"{case}__mask_logits"]) < TOLERANCE


def test_mask_prompt(sam, model, cases, small_embedding):
    """A previous low-res mask fed back with a click (SAM's refinement loop)."""
    transforms = importlib.import_module(sam.__name__ + ".transforms")
    embedding, _ = small_embedding
    best = int(np.argmax(cases["point1__iou"]))
    mask_input = torch.from_numpy(cases["point1__low_res_logits"][best])[None, None]
    coords = transforms.scale_coords(torch.from_numpy(cases["point_mask__point_coords"]), (150, 220))[None]
    labels = torch.from_numpy(cases["point_mask__point_labels"])[None]
    with torch.inference_mode():
        low_res, iou = model.predict(embedding, coords, labels, mask_input=mask_input, multimask_output=False)
    assert max_abs(low_res[0, :, ::2, ::2], cases["point_mask__low_res_logits_sub2"]) < TOLERANCE
    assert max_abs(iou[0], cases["point_mask__iou"]) < TOLERANCE


def test_batched_boxes(sam, model, cases, small_embedding):
    transforms = importlib.import_module(sam.__name__ + ".transforms")
    embedding, _ = small_embedding
    boxes = transforms.scale_boxes(torch.from_numpy(cases["boxes2__boxes"]), (150, 220))
    # Theirs scaled in float32 (apply_boxes_torch), ours in float64 then rounded: within one ulp.
    assert max_abs(boxes, cases["boxes2__boxes_input"]) < 1e-4
    with torch.inference_mode():
        low_res, iou = model.predict(embedding, boxes=torch.from_numpy(cases["boxes2__boxes_input"]), multimask_output=False)
    assert max_abs(low_res, cases["boxes2__low_res_logits"]) < TOLERANCE
    assert max_abs(iou, cases["boxes2__iou"]) < TOLERANCE


def test_float64_agrees_with_float32(sam, model, checkpoint_module, checkpoint_path, cases, small_embedding):
    """float32 stays within float32 rounding of a float64 run: a lossy reformulation would not."""
    transforms = importlib.import_module(sam.__name__ + ".transforms")
    coords = transforms.scale_coords(torch.from_numpy(cases["box_point__point_coords"]), (150, 220))[None]
    boxes = transforms.scale_boxes(torch.from_numpy(cases["box_point__box"]), (150, 220))[None]
    labels = torch.ones(1, 1, dtype=torch.int32)
    embedding32, _ = small_embedding
    with torch.inference_mode():
        low_res32, iou32 = model.predict(embedding32, coords, labels, boxes, multimask_output=True)
    model64 = sam.build_sam(checkpoint_module.read_weights(checkpoint_path).tensors, dtype=torch.float64)
    padded, _ = model64.preprocess(image_tensor("small"))
    assert padded.dtype == torch.float64
    with torch.inference_mode():
        embedding64 = model64.image_encoder(padded)
        low_res64, iou64 = model64.predict(embedding64, coords, labels, boxes, multimask_output=True)
    assert low_res64.dtype == torch.float64
    for ours, exact in ((embedding32, embedding64), (low_res32, low_res64), (iou32, iou64)):
        exact = exact.double()
        # Measured: 3.9e-6 of 3.4 (embedding), 2.8e-6 of 1.5 (logits), 6e-7 (IoU).
        assert float((ours.double() - exact).abs().max()) < 5e-6 * max(1.0, float(exact.abs().max()))


def test_not_a_sam_file(sam, checkpoint_module, tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"backbone.conv1.weight": torch.zeros(8, 3, 3, 3), "head.fc.weight": torch.zeros(2, 8)}, path)
    weights = checkpoint_module.read_weights(path)
    assert not sam.looks_like_sam({k: tuple(v.shape) for k, v in weights.tensors.items()})
    with pytest.raises(checkpoint_module.CheckpointError, match="not a Segment Anything checkpoint.*image_encoder.patch_embed.proj.weight"):
        sam.build_sam(weights.tensors)


def test_missing_and_misshapen_tensors_are_named(sam, manifest):
    state = fill_state_dict({key: shape for key, shape, _ in manifest["tensors"]}, manifest["fill_seed"])
    errors = importlib.import_module(sam.__name__.rsplit(".", 1)[0] + ".errors")
    missing = {k: v for k, v in state.items() if not k.startswith("mask_decoder.output_hypernetworks_mlps.2.")}
    with pytest.raises(errors.CheckpointError, match=r"missing, first mask_decoder\.output_hypernetworks_mlps\.2\.layers\.0"):
        sam.build_sam(missing)
    misshapen = dict(state, **{"prompt_encoder.no_mask_embed.weight": torch.zeros(1, 31)})
    with pytest.raises(errors.CheckpointError, match=r"prompt_encoder\.no_mask_embed\.weight \(1, 31\) \(expected \(1, 32\)\)"):
        sam.build_sam(misshapen)
    extra = dict(state, **{"mask_decoder.hf_token.weight": torch.zeros(1, 32)})
    with pytest.raises(errors.CheckpointError, match="unknown tensors, first mask_decoder.hf_token.weight"):
        sam.build_sam(extra)
    assert isinstance(sam.build_sam(extra, strict=False), sam.SamModel)


def test_bad_image_gets_a_clear_error(model):
    with pytest.raises(ValueError, match=r"RGB image batch \(B, 3, H, W\)"):
        model.preprocess(torch.zeros(1, 4, 32, 32))


@pytest.mark.parametrize("prompt", ["box", "point"])
def test_matting_anything_guidance_masks(sam, model, small_embedding, prompt):
    """guidance_masks gives the masks of Matting Anything's forward_m2m_inference (its vendored SAM)."""
    transforms = importlib.import_module(sam.__name__ + ".transforms")
    golden = np.load(GOLDEN / "mam_guidance.npz")
    embedding, input_size = small_embedding
    original = (150, 220)
    if prompt == "box":
        kwargs = {"boxes": transforms.scale_boxes(torch.from_numpy(golden["box"]).double(), original)[None]}
    else:
        kwargs = {"point_coords": torch.from_numpy(golden["point_input"])[None], "point_labels": torch.ones(1, 1)}
    with torch.inference_mode():
        guidance = model.guidance_masks(embedding, input_size, original, **kwargs)
    for name, ours in (("guide", guidance.guide), ("post", guidance.post)):
        shape = tuple(golden[f"{prompt}__{name}_shape"])
        theirs = np.unpackbits(golden[f"{prompt}__{name}"])[: int(np.prod(shape))].reshape(shape)
        assert tuple(ours.shape) == shape
        assert set(torch.unique(ours).tolist()) <= {0.0, 1.0}
        assert np.array_equal(ours.numpy().astype(np.uint8), theirs)
    assert guidance.low_res_logits.shape == (1, 3, 256, 256)
    assert int(guidance.best_index[0]) == int(guidance.iou_predictions[0].argmax())


MEMORY_SCRIPT = """
import importlib, json, sys
import torch
torch.set_num_threads(1)
sam = importlib.import_module(sys.argv[1] + ".models.sam")
config = sam.SamConfig(embed_dim=384, depth=2, num_heads=6, global_attn_indexes=(1,))
torch.manual_seed(0)
model = sam.SamModel(config).eval()
image = torch.rand(1, 3, 900, 1200)
box = torch.tensor([[100.0, 100.0, 700.0, 600.0]])
def one_pass():
    with torch.inference_mode():
        padded, input_size = model.preprocess(image)
        embedding = model.image_encoder(padded)
        model.guidance_masks(embedding, input_size, (900, 1200), boxes=box)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec, so it
# reported the pytest process's size in a long run
print(json.dumps({"measured": forward_peak(one_pass), "estimate": model.inference_memory_bytes(1, 900, 1200)}))
"""


def test_inference_memory_estimate_is_within_2x_of_the_measured_peak(pack, tmp_path):
    """A ViT (width 384, one windowed and one global block) at 900x1200, in a fresh process."""
    result = measure_in_child(pack, MEMORY_SCRIPT, pack.__name__, timeout=300)
    assert result["estimate"] / 2 <= result["measured"] <= result["estimate"] * 2, result
