"""Make the Segment Anything golden fixtures (tests/golden/sam/) by running the authors' code.

Not part of the pack and never imported by it or by the tests. Run with the authors' repository
on PYTHONPATH, in a scratch venv holding torch, torchvision, numpy and pillow:

    git --git-dir=<fetched facebookresearch/segment-anything> archive HEAD segment_anything | tar -x -C /tmp/scratch/sam/sa
    PYTHONPATH=/tmp/scratch/sam/sa /tmp/scratch/venv-sam/bin/python tools/make_sam_golden.py --commit <sha>

What it does:
1. builds the authors' ImageEncoderViT / PromptEncoder / MaskDecoder / TwoWayTransformer / Sam
   with the reduced configuration TINY below (same constructors build_sam.py calls);
2. fills every tensor of the state dict with the deterministic rule of ``fill_state_dict``
   (also written, word for word, in tests/test_models_sam.py and the README) and records a
   manifest (key, shape, dtype) and a SHA-256 of the tensors' bytes in sorted key order, so the
   test rebuilds the identical checkpoint (a flat state dict, the released files' layout) instead
   of committing it;
3. runs SamPredictor (set_image, predict, predict_torch) on two seeded images and the prompt
   cases below, and writes inputs as PNG / npz and outputs as float32 npz.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from segment_anything.build_sam import sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from segment_anything.predictor import SamPredictor

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "sam"

TINY = dict(
    encoder_embed_dim=64,
    encoder_depth=4,
    encoder_num_heads=2,
    encoder_global_attn_indexes=[1, 3],
    window_size=14,
    image_size=1024,
    patch_size=16,
    prompt_embed_dim=32,
    mask_in_chans=8,
    decoder_depth=2,
    decoder_mlp_dim=128,
    decoder_num_heads=8,
    iou_head_depth=3,
    iou_head_hidden_dim=32,
)
FILL_SEED = 20240601
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


def fill_state_dict(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Deterministic random weights: one torch.Generator seeded FILL_SEED, keys in sorted order,
    each tensor drawn as torch.randn(shape, generator=g, dtype=float32) then scaled:
    learned embeddings and the gaussian matrix: x1; 1-D '.weight' (norms): 1 + 0.1 x;
    '.bias', pos_embed, rel_pos_*: 0.1 x; other weights: x / sqrt(prod(shape[1:]))."""
    generator = torch.Generator().manual_seed(FILL_SEED)
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


def digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].contiguous().numpy().tobytes())
    return h.hexdigest()


def build_tiny() -> Sam:
    c = TINY
    grid = c["image_size"] // c["patch_size"]
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=c["encoder_depth"],
            embed_dim=c["encoder_embed_dim"],
            img_size=c["image_size"],
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=c["encoder_num_heads"],
            patch_size=c["patch_size"],
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=c["encoder_global_attn_indexes"],
            window_size=c["window_size"],
            out_chans=c["prompt_embed_dim"],
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=c["prompt_embed_dim"],
            image_embedding_size=(grid, grid),
            input_image_size=(c["image_size"], c["image_size"]),
            mask_in_chans=c["mask_in_chans"],
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=c["decoder_depth"],
                embedding_dim=c["prompt_embed_dim"],
                mlp_dim=c["decoder_mlp_dim"],
                num_heads=c["decoder_num_heads"],
            ),
            transformer_dim=c["prompt_embed_dim"],
            iou_head_depth=c["iou_head_depth"],
            iou_head_hidden_dim=c["iou_head_hidden_dim"],
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def make_image(seed: int, height: int, width: int) -> np.ndarray:
    """A smooth random colour field with a few hard-edged rectangles (compresses well as PNG)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC)).copy()
    for _ in range(4):
        y0, x0 = rng.integers(0, height - 10), rng.integers(0, width - 10)
        y1, x1 = y0 + rng.integers(5, height // 3), x0 + rng.integers(5, width // 3)
        image[y0:y1, x0:x1] = rng.integers(0, 256, size=3, dtype=np.uint8)
    return image


def make_mam_guidance(sam: Sam) -> None:
    """Matting Anything's vendored SAM (its segment-anything/ folder on PYTHONPATH instead):
    ``Sam.forward_m2m_inference`` on the small image, with the sample dict built as its
    inference_benchmark.py builds it (apply_image, apply_boxes, normalise, pad), box and point."""
    from segment_anything.utils.transforms import ResizeLongestSide

    transform = ResizeLongestSide(1024)
    image = np.asarray(Image.open(OUT / "image_small.png").convert("RGB"))
    original_size = image.shape[:2]
    resized = torch.as_tensor(transform.apply_image(image)).permute(2, 0, 1).contiguous()
    bbox = transform.apply_boxes(np.array([30, 20, 190, 130]), original_size)
    point = np.array([[(bbox[0][0] + bbox[0][2]) / 2, (bbox[0][1] + bbox[0][3]) / 2]])
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    normalised = (resized - mean) / std
    h, w = normalised.shape[-2:]
    padded = torch.nn.functional.pad(normalised, (0, 1024 - w, 0, 1024 - h))
    arrays = {"box": np.array([30, 20, 190, 130]), "point_input": point.astype(np.float32)}
    base = {"image": padded[None], "ori_shape": original_size, "pad_shape": (h, w)}
    for name, extra in (
        ("box", {"bbox": torch.as_tensor(bbox, dtype=torch.float)[None]}),
        ("point", {"point": torch.as_tensor(point, dtype=torch.float)[None], "label": torch.ones(1, 1)}),
    ):
        _, guide, post = sam.forward_m2m_inference(dict(base, **extra), multimask_output=True)
        arrays[f"{name}__guide"] = np.packbits(guide.numpy().astype(bool))
        arrays[f"{name}__guide_shape"] = np.array(guide.shape)
        arrays[f"{name}__post"] = np.packbits(post.numpy().astype(bool))
        arrays[f"{name}__post_shape"] = np.array(post.shape)
    np.savez_compressed(OUT / "mam_guidance.npz", **arrays)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commit", required=True, help="the authors' segment-anything commit used")
    parser.add_argument(
        "--variant",
        choices=("official", "mam"),
        default="official",
        help="official: facebookresearch/segment-anything on PYTHONPATH; mam: SHI-Labs/Matting-Anything's segment-anything/",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)

    sam = build_tiny()
    if args.variant == "mam":
        manifest = json.loads((OUT / "manifest.json").read_text())
        state = fill_state_dict({k: tuple(s) for k, s, _ in manifest["tensors"]})
        assert digest(state) == manifest["sha256"]
        sam.load_state_dict(state, strict=True)
        make_mam_guidance(sam)
        return

    shapes = {k: tuple(v.shape) for k, v in sam.state_dict().items()}
    state = fill_state_dict(shapes)
    sam.load_state_dict(state, strict=True)
    manifest = {
        "fill_seed": FILL_SEED,
        "sha256": digest(state),
        "config": TINY,
        "tensors": [[k, list(shapes[k]), "float32"] for k in sorted(shapes)],
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    # The checkpoint file as it would be released: a flat state dict (torch.save of sam.state_dict()).
    buffer = io.BytesIO()
    torch.save(sam.state_dict(), buffer)
    print("checkpoint bytes", buffer.tell(), "(not committed; rebuilt by the test)")

    # The released architectures' key -> shape maps, from the authors' builders on the meta device.
    official = {}
    for size in ("vit_b", "vit_l", "vit_h"):
        with torch.device("meta"):
            official[size] = {k: list(v.shape) for k, v in sam_model_registry[size]().state_dict().items()}
    (OUT / "official_shapes.json").write_text(json.dumps(official, separators=(",", ":")) + "\n")

    images = {"small": make_image(1, 150, 220), "large": make_image(2, 1060, 700)}
    for name, image in images.items():
        Image.fromarray(image).save(OUT / f"image_{name}.png", optimize=True)

    predictor = SamPredictor(sam)
    arrays: dict[str, np.ndarray] = {}
    resized = {}
    for name, image in images.items():
        resized[name] = predictor.transform.apply_image(image)
        arrays[f"resized_{name}_shape"] = np.array(resized[name].shape)
        arrays[f"resized_{name}_sha256"] = np.frombuffer(bytes.fromhex(hashlib.sha256(resized[name].tobytes()).hexdigest()), np.uint8)

    # Batched encoder: both images through Sam.preprocess, stacked, one image_encoder call.
    # The outputs of the global-attention blocks are recorded with forward hooks.
    global_outputs: list[torch.Tensor] = []
    hooks = [
        sam.image_encoder.blocks[i].register_forward_hook(lambda m, inp, out: global_outputs.append(out))
        for i in TINY["encoder_global_attn_indexes"]
    ]
    with torch.no_grad():
        batch = torch.stack(
            [sam.preprocess(torch.as_tensor(resized[n]).permute(2, 0, 1).contiguous()) for n in ("small", "large")]
        )
        embeddings = sam.image_encoder(batch)
    for hook in hooks:
        hook.remove()
    # Embeddings and the global blocks' outputs, every 4th row and column (to keep the fixtures small).
    arrays["batch_embedding_sub4"] = embeddings[:, :, ::4, ::4].numpy().copy()
    for i, out in zip(TINY["encoder_global_attn_indexes"], global_outputs):
        arrays[f"batch_global_block{i}_sub4"] = out[:, ::4, ::4].numpy().copy()

    predictor.set_image(images["small"])
    arrays["embedding_small_sub2"] = predictor.get_image_embedding()[0, :, ::2, ::2].numpy().copy()
    arrays["input_size_small"] = np.array(predictor.input_size)

    cases = {
        "point1": dict(point_coords=np.array([[110.0, 75.0]]), point_labels=np.array([1]), multimask_output=True),
        "points3": dict(
            point_coords=np.array([[50.0, 40.0], [160.0, 100.0], [120.0, 30.0]]),
            point_labels=np.array([1, 0, 1]),
            multimask_output=False,
        ),
        "box": dict(box=np.array([30.0, 20.0, 190.0, 130.0]), multimask_output=False),
        "box_point": dict(
            box=np.array([40.0, 30.0, 200.0, 140.0]),
            point_coords=np.array([[100.0, 80.0]]),
            point_labels=np.array([1]),
            multimask_output=False,
        ),
    }
    for name, prompt in cases.items():
        masks, iou, low_res = predictor.predict(**prompt, return_logits=True)
        for key, value in prompt.items():
            arrays[f"{name}__{key}"] = np.asarray(value)
        arrays[f"{name}__low_res_logits"] = low_res.astype(np.float32)
        arrays[f"{name}__iou"] = iou.astype(np.float32)
        if name == "point1":
            arrays[f"{name}__mask_logits"] = masks.astype(np.float32)

    # A mask prompt: point1's best low-res logits fed back with another click (SAM's refinement).
    mask_input = arrays["point1__low_res_logits"][int(np.argmax(arrays["point1__iou"]))][None]
    masks, iou, low_res = predictor.predict(
        point_coords=np.array([[60.0, 100.0]]),
        point_labels=np.array([1]),
        mask_input=mask_input,
        multimask_output=False,
        return_logits=True,
    )
    arrays["point_mask__point_coords"] = np.array([[60.0, 100.0]])
    arrays["point_mask__point_labels"] = np.array([1])
    arrays["point_mask__multimask_output"] = np.array(False)
    arrays["point_mask__low_res_logits_sub2"] = low_res[:, ::2, ::2].astype(np.float32).copy()
    arrays["point_mask__iou"] = iou.astype(np.float32)

    # Batched boxes through predict_torch, transformed with the torch path as its docs say.
    boxes = torch.tensor([[30.0, 20.0, 190.0, 130.0], [10.0, 10.0, 100.0, 90.0]])
    boxes_input = predictor.transform.apply_boxes_torch(boxes, images["small"].shape[:2])
    masks, iou, low_res = predictor.predict_torch(None, None, boxes=boxes_input, multimask_output=False, return_logits=True)
    arrays["boxes2__boxes"] = boxes.numpy()
    arrays["boxes2__boxes_input"] = boxes_input.numpy()
    arrays["boxes2__multimask_output"] = np.array(False)
    arrays["boxes2__low_res_logits"] = low_res.numpy()
    arrays["boxes2__iou"] = iou.numpy()

    np.savez_compressed(OUT / "cases.npz", **arrays)
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print("golden bytes", total)


if __name__ == "__main__":
    main()
