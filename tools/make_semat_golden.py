"""Make the SEMat golden fixtures (tests/golden/semat/) by running the authors' own code.

Never imported by the pack or its tests. Runs in a scratch venv with the fetched SEMat and
detectron2 sources (see tests/golden/semat/README.md for the exact command):

    PYTHONPATH=/tmp/scratch/semat/src:/tmp/scratch/semat/d2 /tmp/scratch/venv-semat/bin/python tools/make_semat_golden.py \
        --semat /tmp/scratch/semat/src --detectron2 /tmp/scratch/semat/d2 [--write-checkpoints DIR]

What it does:
1. builds the authors' ``SamHqMatte`` as ``configs/SEMat_SAM.py`` (and ``SEMat_HQ-SAM.py``)
   configure it, but with a reduced ViT (width 128, 2 heads, 8 blocks, global attention in
   blocks 1, 3, 5, 7) and a narrower detail decoder; the mask decoder, prompt encoder, LoRA
   (r = 16, alpha = 16 on qkv / proj / patch_embed.proj) and the 13x13 image stem are full size;
2. fills every tensor of its state dict with the deterministic rule of ``fill_tensor`` (the test
   rebuilds the identical checkpoint from ``manifest_*.json`` with the same rule);
3. saves it as detectron2's checkpointer does ({'model': ..., 'trainer': ..., 'iteration': ...},
   peft key names) and writes the manifest (key -> shape, dtype, in file order);
4. runs the authors' evaluation path on seeded images and boxes: their ``ResziePad`` transform
   (long side to 1024, bilinear, zero pad), ``SamHqMatte.forward`` (normalisation, box mask,
   SAM box prompt, matting decoder) and their crop of the padded area; records inputs (uint8)
   and outputs (float32).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from _authors_code import require_importable  # tools/ is this script's folder

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "golden" / "semat"

FILL_SEED = 1234
ENCODER = dict(embed_dim=128, depth=8, num_heads=2, global_attn_indexes=[1, 3, 5, 7])
DETAIL = dict(
    downsample_in_out=[(4, 8), (8, 16), (16, 16), (16, 32)],
    upsample_in_out=[(32, 16), (16, 16), (16, 8), (8, 4)],
    matting_head_in=4,
)
STRIDE = 4  # the 1024-frame alpha is stored every 4th pixel, plus a full-resolution window
WINDOW = 96

# (name, variant, image sizes (H, W), boxes (x1, y1, x2, y2) in input pixels, x2/y2 end-exclusive)
CASES = [
    ("sam_single", "sam", [(240, 320)], [(60, 40, 250, 220)]),
    ("sam_batch", "sam", [(200, 256), (200, 256)], [(30, 20, 200, 190), (100, 50, 256, 200)]),
    ("hq_auto", "hq", [(256, 200)], [(0, 0, 200, 256)]),  # the whole image: what "auto" gives
]


def fill_tensor(key: str, shape, dtype: torch.dtype, index: int) -> torch.Tensor:
    """The deterministic value of one checkpoint tensor (index: its place in sorted key order)."""
    generator = torch.Generator().manual_seed(FILL_SEED + index)
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    if key.endswith("running_var"):
        values = 0.5 + torch.rand(shape, generator=generator)
    elif len(shape) >= 2:
        values = torch.randn(shape, generator=generator) / math.sqrt(math.prod(shape[1:]))
    elif key.endswith(".weight"):
        values = 1.0 + 0.1 * torch.randn(shape, generator=generator)
    else:
        values = 0.1 * torch.randn(shape, generator=generator)
    return values.to(dtype)


def frame_box(box, height: int, width: int) -> list[float]:
    """The authors' demo rule: corner pixels (last indices) * scale, rounded, clipped to [0, 1023]."""
    scale = 1024 * 1.0 / max(height, width)
    x1, y1, x2, y2 = box[0], box[1], box[2] - 1, box[3] - 1
    corners = [int(v * scale + 0.5) for v in (x1, y1, x2, y2)]
    return [float(v) for v in np.clip(np.array(corners, dtype=np.float64), 0, 1023.0)]


def build_model(variant: str, full_size: bool = False):
    from modeling.decoder.unet_detail_capture import MattingDetailDecoder
    from modeling.meta_arch import SamHqMatte
    from modeling.semantic_enhanced_matting.build_sam import _build_sam

    # configs/SEMat_SAM.py: matting_token = 3, wo_hq = True, frozen_decoder = True,
    # mask_matting_res_add = False; configs/SEMat_HQ-SAM.py keeps the HQ token and the residual add.
    hq = variant == "hq"
    # Full size: build_sam_vit_l's encoder and MattingDetailDecoder's default widths.
    encoder = dict(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=[5, 11, 17, 23]) if full_size else ENCODER
    detail = {} if full_size else {k: [tuple(p) for p in v] if isinstance(v, list) else v for k, v in DETAIL.items()}
    sam = _build_sam(
        encoder_embed_dim=encoder["embed_dim"],
        encoder_depth=encoder["depth"],
        encoder_num_heads=encoder["num_heads"],
        encoder_global_attn_indexes=encoder["global_attn_indexes"],
        checkpoint=None,
        matting_token=3,
        wo_hq=not hq,
        frozen_decoder=True,
        mask_matting_res_add=hq,
    )
    decoder = MattingDetailDecoder(
        vit_intern_feat_in=encoder["embed_dim"],
        vit_intern_feat_index=[0, 1, 2, 3],
        norm_type="SyncBN",
        block_num=2,
        img_feat_in=6,
        norm_mask_logits=6.5,
        **detail,
    )
    model = SamHqMatte(
        sam_model=sam,
        hq_token_only=True,
        hq_features_type="Final",
        multimask_output=True,
        matting_decoder=decoder,
        criterion=None,
        pixel_mean=[123.675 / 255.0, 116.280 / 255.0, 103.530 / 255.0],
        pixel_std=[58.395 / 255.0, 57.120 / 255.0, 57.375 / 255.0],
        lora_rank=16,
        lora_alpha=16,
        backbone_bbox_prompt="bbox",
        backbone_bbox_prompt_loc=[2, 3],
        backbone_bbox_prompt_loss_weight=1.0,
        matting_token=True,
        sam_hq_token_reg=0.2,
        reg_on_sam_logits=not hq,
        reg_w_bce_loss=True,
        matting_token_sup="trimap",
        matting_token_sup_loss_weight=0.05,
        trimap_loss_type="NGHM",
    )
    model.init_lora()
    model.eval()
    return model


def fill_model(model) -> dict:
    state = model.state_dict()
    filled = {}
    for index, key in enumerate(sorted(state)):
        filled[key] = fill_tensor(key, tuple(state[key].shape), state[key].dtype, index)
    result = model.load_state_dict(filled, strict=True)
    assert not result.missing_keys and not result.unexpected_keys, result
    return {key: filled[key] for key in state}  # file order = the module's order


def seeded_image(seed: int, height: int, width: int) -> np.ndarray:
    """A smooth random picture with some edges (uint8 RGB)."""
    rng = np.random.RandomState(seed)
    coarse = rng.rand(3, 1 + height // 24, 1 + width // 24).astype(np.float32)
    smooth = F.interpolate(torch.from_numpy(coarse)[None], size=(height, width), mode="bicubic", align_corners=False)[0]
    noise = torch.from_numpy(rng.rand(3, height, width).astype(np.float32)) * 0.25
    picture = (smooth * 0.8 + noise).clamp(0, 1).permute(1, 2, 0).numpy()
    return np.round(picture * 255).astype(np.uint8)


def run_case(model, images: list[np.ndarray], boxes) -> dict:
    import torchvision
    from data.dim_dataset import ResziePad

    resize_pad = ResziePad(target_size=1024)
    padded, frame_boxes, sizes = [], [], []
    for image, box in zip(images, boxes):
        height, width = image.shape[:2]
        sample = {
            "image": torchvision.transforms.functional.to_tensor(image),
            "alpha": torch.zeros(1, height, width),
        }
        sample = resize_pad(sample)
        padded.append(sample["image"])
        frame_boxes.append([frame_box(box, height, width)])
        scale = 1024 * 1.0 / max(height, width)
        sizes.append((int(height * scale + 0.5), int(width * scale + 0.5)))
    batch = {"image": torch.stack(padded), "bbox": torch.tensor(frame_boxes, dtype=torch.float32)}
    with torch.no_grad():
        # SamHqMatte.forward's steps (as their demo calls them, to also get the matting logits):
        # normalise, then the encoder with the box as condition, decoders.
        inputs = model.preprocess_inputs(batch)
        _, alpha, _, tokens = model.forward_samhq_and_matting_decoder(inputs["images"], inputs["bbox"], inputs["bbox"])
    new_h, new_w = sizes[0]
    assert all(s == sizes[0] for s in sizes)
    cropped = alpha[:, :, :new_h, :new_w]  # their evaluator's crop of the padded area
    logits = tokens["masks_matting"]  # (B, 3, 1024, 1024), bilinear from 256²
    wy, wx = frame_window(frame_boxes[0][0], new_h, new_w)
    return {
        "alpha_strided": cropped[:, :, ::STRIDE, ::STRIDE].numpy().astype(np.float32),
        "alpha_window": cropped[:, :, wy : wy + WINDOW, wx : wx + WINDOW].numpy().astype(np.float32),
        "window_origin": np.array([wy, wx], dtype=np.int64),
        "logits_strided": logits[:, :, : new_h : STRIDE * 4, : new_w : STRIDE * 4].numpy().astype(np.float32),
        "frame_boxes": np.array(frame_boxes, dtype=np.float32)[:, 0],
        "frame_size": np.array([new_h, new_w], dtype=np.int64),
        "boxes": np.array(boxes, dtype=np.int64),
        "alpha_stats": np.array([cropped.min(), cropped.max(), cropped.mean(), cropped.std()], dtype=np.float32),
    }


def frame_window(box, height: int, width: int) -> tuple[int, int]:
    """A window over the box's top-left corner (where the box mask's edge is), inside the frame."""
    y = int(min(max(box[1] - WINDOW // 2, 0), height - WINDOW))
    x = int(min(max(box[0] - WINDOW // 2, 0), width - WINDOW))
    return y, x


def save_checkpoint(state: dict, path: Path) -> None:
    # detectron2's DetectionCheckpointer(model, trainer=...) writes the model, the trainer's state
    # and the iteration; the released files are model_final.pth files of that checkpointer.
    torch.save({"model": state, "trainer": {"iteration": 59999, "hooks": {}}, "iteration": 59999}, path)


def released_shapes() -> dict:
    """The full-size models' state-dict shapes (built on the meta device): the released layout."""
    shapes = {}
    for variant, name in (("sam", "SEMat_SAM"), ("hq", "SEMat_HQ-SAM")):
        with torch.device("meta"):
            model = build_model(variant, full_size=True)
        named = dict(model.named_parameters())
        shapes[name] = {
            "shapes": {key: list(value.shape) for key, value in model.state_dict().items()},
            "parameters": sum(p.numel() for p in named.values()),
            "lora_parameters": sum(p.numel() for k, p in named.items() if ".lora_" in k),
        }
        print(name, "parameters", shapes[name]["parameters"], "of which LoRA", shapes[name]["lora_parameters"])
    return shapes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--semat", required=True, type=Path, help="the fetched SEMat source tree")
    parser.add_argument("--detectron2", required=True, type=Path, help="the fetched detectron2 source tree")
    parser.add_argument("--write-checkpoints", type=Path, default=None, help="also keep the .pth files here")
    parser.add_argument("--released-shapes-only", action="store_true", help="only write released_shapes.json")
    parser.add_argument("--cases", nargs="*", default=None, help="only these cases (default: all)")
    args = parser.parse_args()
    require_importable(["modeling", "detectron2"], [args.semat, args.detectron2])
    # One thread: on a shared CPU, two OpenMP threads waiting on each other made the batched
    # 13x13 convolution take tens of minutes; the results do not depend on it.
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "released_shapes.json").write_text(json.dumps(released_shapes()) + "\n")
    if args.released_shapes_only:
        return

    OUT.mkdir(parents=True, exist_ok=True)
    models = {}
    for variant in ("sam", "hq"):
        torch.manual_seed(0)
        model = build_model(variant)
        state = fill_model(model)
        manifest = {
            "layout": {"model": "<state dict>", "trainer": {"iteration": 59999, "hooks": {}}, "iteration": 59999},
            "fill_seed": FILL_SEED,
            "tensors": [[key, list(value.shape), str(value.dtype).replace("torch.", "")] for key, value in state.items()],
        }
        (OUT / f"manifest_{variant}.json").write_text(json.dumps(manifest, indent=0) + "\n")
        if args.write_checkpoints is not None:
            args.write_checkpoints.mkdir(parents=True, exist_ok=True)
            save_checkpoint(state, args.write_checkpoints / f"semat_{variant}_tiny.pth")
        models[variant] = model
        print(variant, "parameters:", sum(v.numel() for v in state.values()))

    from PIL import Image

    seed = 100
    for name, variant, sizes, boxes in CASES:
        images = []
        for i, (height, width) in enumerate(sizes):
            images.append(seeded_image(seed, height, width))
            seed += 1  # every case's seeds are fixed, whichever cases run
        if args.cases is not None and name not in args.cases:
            continue
        for i, image in enumerate(images):
            Image.fromarray(image).save(OUT / f"{name}_{i}.png")
        record = run_case(models[variant], images, boxes)
        np.savez_compressed(OUT / f"{name}.npz", **record)
        print(name, "alpha min/max/mean/std", record["alpha_stats"], "frame boxes", record["frame_boxes"].tolist())

    commit = subprocess.run(
        ["git", "-C", str(args.semat), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print("SEMat source commit (if a checkout):", commit or "(exported tree)")


if __name__ == "__main__":
    main()
