"""Make the Matting Anything (MAM) golden fixtures by running the authors' code.

Not part of the pack and never imported by it or by the tests. Run it in a scratch environment
that has the authors' repository and their dependencies (see tests/golden/mam/README.md):

    PYTHONPATH=/tmp/scratch/mam/src:/tmp/scratch/mam/src/segment-anything \
        python tools/make_mam_golden.py --authors /tmp/scratch/mam/src --out tests/golden/mam

What it does:
1. builds the authors' modules in a reduced configuration (a tiny SAM: ViT of width 64, depth 2,
   2 heads; the official prompt encoder and mask decoder; the authors' Mask-to-Matte module
   ``SAM_Decoder_Deep`` with one block per stage instead of [2, 3, 3, 2]);
2. writes a manifest of their tensors with a deterministic random fill (tests/mam_golden.py),
   rebuilds both checkpoint files from it in a temporary folder (the SAM file flat like
   ``sam_vit_b_01ec64.pth``; the MAM file as the authors' trainer saves ``mam_vitb.pth``,
   spectral-norm ``weight_bar/_u/_v`` keys, optimizer and scheduler state) and loads them the
   authors' way (``Sam.load_state_dict``; ``m2m.load_state_dict(remove_prefix_state_dict(...))``);
3. runs the authors' inference (``sam_m2m.forward_inference`` -> ``Sam.forward_m2m_inference``)
   on seeded images with the demo's preprocessing (``ResizeLongestSide(1024).apply_image``,
   normalisation in 0-255 units, zero padding to 1024²) and its "alpha" guidance fusion
   (``get_unknown_box_from_mask``, then ``get_unknown_tensor_from_pred_oneside`` with the demo's
   widths 20 and 10), per image (the authors' box step reads only the batch's first image);
4. records the elliptic structuring elements (cv2.getStructuringElement) and cv2.dilate results
   on random masks, so the tests can prove our torch dilation equal to OpenCV's;
5. saves inputs (uint8 PNG/npz) and outputs (float32 npz) under --out.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from _authors_code import require_importable  # tools/ is this script's folder

REPO = Path(__file__).resolve().parent.parent
AUTHORS_COMMIT = "eb01e1c1f0016e2a4d00615b115f3b5ddcd031e4"  # the export used (git archive HEAD)
SEED = 20260
IMAGE_SIZES = {"landscape": (90, 120), "portrait": (128, 96)}  # (H, W)
M2M_LAYERS = [2, 1, 1, 1]  # the released module: [2, 3, 3, 2] (layers[0] is unused by the authors)
TINY_ENCODER = dict(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=[1])


def load_helper():
    spec = importlib.util.spec_from_file_location("mam_golden", REPO / "tests" / "mam_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_authors(authors: Path):
    """The authors' modules (from PYTHONPATH), imported from the repository root as their scripts run."""
    require_importable(["networks", "utils", "segment_anything"], [authors, authors / "segment-anything"])
    os.chdir(authors)
    # The authors' helpers move results to CUDA; this machine has none.
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    import utils  # noqa: F401  (authors')
    import networks
    from networks.m2ms.conv_sam import SAM_Decoder_Deep
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
    from segment_anything.utils.transforms import ResizeLongestSide
    from segment_anything import sam_model_registry

    return dict(
        utils=utils,
        networks=networks,
        SAM_Decoder_Deep=SAM_Decoder_Deep,
        ImageEncoderViT=ImageEncoderViT,
        MaskDecoder=MaskDecoder,
        PromptEncoder=PromptEncoder,
        Sam=Sam,
        TwoWayTransformer=TwoWayTransformer,
        ResizeLongestSide=ResizeLongestSide,
        sam_model_registry=sam_model_registry,
    )


def build_tiny_sam(a):
    """``_build_sam`` with a narrow, shallow image encoder (the rest as the official configs)."""
    from functools import partial

    return a["Sam"](
        image_encoder=a["ImageEncoderViT"](
            depth=TINY_ENCODER["depth"],
            embed_dim=TINY_ENCODER["embed_dim"],
            img_size=1024,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=TINY_ENCODER["num_heads"],
            patch_size=16,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=TINY_ENCODER["global_attn_indexes"],
            window_size=14,
            out_chans=256,
        ),
        prompt_encoder=a["PromptEncoder"](
            embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024), mask_in_chans=16
        ),
        mask_decoder=a["MaskDecoder"](
            num_multimask_outputs=3,
            transformer=a["TwoWayTransformer"](depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()


SAM_UNIT_NORMAL = ("point_embeddings", "not_a_point_embed", "no_mask_embed", "iou_token", "mask_tokens")


def sam_fill(key: str, shape: tuple) -> list:
    if key.endswith("positional_encoding_gaussian_matrix") or any(name in key for name in SAM_UNIT_NORMAL):
        return ["normal", 0.0, 1.0]  # nn.Embedding's and the random Fourier features' own scale
    if "rel_pos" in key or key.endswith("pos_embed"):
        return ["normal", 0.0, 0.1]
    if len(shape) >= 2:
        return ["normal", 0.0, float(np.prod(shape[1:])) ** -0.5]
    if key.endswith(".weight"):  # every 1-D weight of SAM is a LayerNorm's
        return ["normal", 1.0, 0.1]
    return ["normal", 0.0, 0.02]


def m2m_fill(key: str, shape: tuple, dtype: torch.dtype) -> list:
    if dtype == torch.int64:
        return ["const", 20000]  # BatchNorm's num_batches_tracked
    if key.endswith("weight_u") or key.endswith("weight_v"):
        return ["unit"]  # the power iteration keeps them unit vectors
    if key.endswith("running_mean"):
        return ["normal", 0.0, 0.3]
    if key.endswith("running_var"):
        return ["uniform", 0.5, 2.0]
    if len(shape) >= 2:  # weight_bar and the refine heads' plain convolutions
        return ["normal", 0.0, float(np.prod(shape[1:])) ** -0.5]
    if key.endswith(".weight"):  # BatchNorm scale
        return ["normal", 1.0, 0.2]
    return ["normal", 0.0, 0.1]


def entries(state: dict, fill) -> list:
    out = []
    for key in sorted(state):
        tensor = state[key]
        dtype = "int64" if tensor.dtype == torch.int64 else "float32"
        out.append([key, list(tensor.shape), dtype, fill(key, tuple(tensor.shape), tensor.dtype)])
    return out


def shape_listing(state: dict) -> dict:
    return {key: [list(value.shape), str(value.dtype).replace("torch.", "")] for key, value in state.items()}


def make_manifest(a) -> tuple[dict, dict]:
    sam = build_tiny_sam(a)
    m2m = a["SAM_Decoder_Deep"](256, M2M_LAYERS)
    m2m_state = m2m.state_dict()
    # The trainer's Adam covers sam_m2m.parameters(): the M2M module (registered first), then SAM.
    m2m_params = dict(m2m.named_parameters())
    parameter_count = len(m2m_params) + len(list(sam.parameters()))
    optimizer_params = [
        [index, list(p.shape)] for index, (name, p) in enumerate(m2m_params.items()) if p.requires_grad
    ]
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, betas=[0.5, 0.999])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=16000)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    group = {k: v for k, v in optimizer.state_dict()["param_groups"][0].items() if k != "params"}
    manifest = {
        "seed": SEED,
        "files": {
            "sam_tiny.pth": {"layout": "flat", "tensors": entries(sam.state_dict(), lambda k, s, d: sam_fill(k, s))},
            "mam_tiny.pth": {
                "layout": "trainer",
                "tensors": entries(m2m_state, m2m_fill),
                "iter": 20000,
                "loss": 0.125,
                "parameter_count": parameter_count,
                "optimizer_params": optimizer_params,
                "optimizer_group": group,
                "lr_state": scheduler.state_dict(),
            },
        },
    }
    # Key -> shape listings of the released architectures (for the recogniser and config tests).
    released = {
        "mam_vitb_state_dict": shape_listing(a["SAM_Decoder_Deep"](256, [2, 3, 3, 2]).state_dict()),
        "mam_parameter_count": sum(
            p.numel() for p in a["networks"].m2ms.sam_decoder_deep(nc=256).parameters() if p.requires_grad
        ),
    }
    with torch.device("meta"):
        for name in ("vit_b", "vit_l", "vit_h"):
            released[f"sam_{name}"] = shape_listing(a["sam_model_registry"][name]().state_dict())
    return manifest, released


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A seeded uint8 RGB image with shapes at several scales (so resizing and masks have work)."""
    from PIL import Image

    out = np.zeros((height, width, 3), np.float64)
    for cells, weight in ((3, 0.6), (9, 0.3), (40, 0.1)):
        coarse = rng.uniform(0, 255, (cells, cells, 3)).astype(np.uint8)
        out += weight * np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.float64)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def prepare(a, images: list[np.ndarray]):
    """The demo's preprocessing of one or more same-size images -> (B, 3, 1024, 1024), pad size."""
    transform = a["ResizeLongestSide"](1024)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    out = []
    for image in images:
        resized = torch.as_tensor(transform.apply_image(image)).permute(2, 0, 1).contiguous()
        normalised = (resized - mean) / std
        h, w = normalised.shape[-2:]
        pad_size = normalised.shape[-2:]
        out.append(torch.nn.functional.pad(normalised, (0, 1024 - w, 0, 1024 - h)))
    return torch.stack(out), pad_size


def fuse(a, pred: dict, post_mask: torch.Tensor, sample: dict):
    """The demo's "alpha" guidance for one image (run_grounded_sam, guidance_mode='alpha')."""
    utils = a["utils"]
    F = torch.nn.functional
    os8, os4, os1 = (pred[k][..., : sample["pad_shape"][0], : sample["pad_shape"][1]] for k in ("alpha_os8", "alpha_os4", "alpha_os1"))
    os8, os4, os1 = (F.interpolate(x, sample["ori_shape"], mode="bilinear", align_corners=False) for x in (os8, os4, os1))
    recorded = {"os8": os8[0, 0].clone(), "os4": os4[0, 0].clone(), "os1": os1[0, 0].clone()}
    weight_os8 = utils.get_unknown_box_from_mask(post_mask)
    os8[weight_os8 > 0] = post_mask[weight_os8 > 0]
    alpha = os8.clone().detach()
    weight_os4 = utils.get_unknown_tensor_from_pred_oneside(alpha, rand_width=20, train_mode=False)
    alpha[weight_os4 > 0] = os4[weight_os4 > 0]
    weight_os1 = utils.get_unknown_tensor_from_pred_oneside(alpha, rand_width=10, train_mode=False)
    alpha[weight_os1 > 0] = os1[weight_os1 > 0]
    recorded["alpha"] = alpha[0, 0]
    return recorded


def run_case(a, model, images, prompt):
    """One batch through forward_inference; per image: alpha, post_mask, os8/os4/os1 at input size."""
    transform = a["ResizeLongestSide"](1024)
    original_size = images[0].shape[:2]
    batch, pad_size = prepare(a, images)
    sample = {"image": batch, "ori_shape": original_size, "pad_shape": pad_size}
    if prompt["kind"] in ("box", "mask"):
        boxes = [transform.apply_boxes(np.asarray(box, np.float64), original_size) for box in prompt["pixels"]]
        sample["bbox"] = torch.stack([torch.as_tensor(b, dtype=torch.float) for b in boxes])
    else:
        coords = [transform.apply_coords(np.asarray(c, np.float64), original_size) for c in prompt["pixels"]]
        sample["point"] = torch.stack([torch.as_tensor(c, dtype=torch.float) for c in coords])
        sample["label"] = torch.ones(sample["point"].shape[:2], dtype=torch.float)
    with torch.no_grad():
        feas, pred, post_mask = model.forward_inference(sample)
    results = []
    for n in range(len(images)):
        one = {k: v[n : n + 1] for k, v in pred.items()}
        fused = fuse(a, one, post_mask[n : n + 1].clone(), sample)
        fused["post_mask"] = post_mask[n, 0].clone()
        fused["guide_mask"] = model.m2m_guide[n, 0].clone()
        results.append({k: v.numpy().astype(np.float32) for k, v in fused.items()})
    return results


def morphology_cases(rng: np.random.Generator) -> dict:
    import cv2

    out = {}
    for size in (5, 10):
        out[f"ellipse{size}"] = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        for index in range(2):
            mask = (rng.uniform(size=(37, 53)) > 0.97).astype(np.uint8)
            mask[0, 5] = mask[-1, -3] = mask[20, 0] = 1  # borders
            out[f"dilate{size}.{index}.input"] = mask
            out[f"dilate{size}.{index}.output"] = cv2.dilate(mask, out[f"ellipse{size}"])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", type=Path, required=True, help="the authors' repository (Matting-Anything)")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "golden" / "mam")
    parser.add_argument("--authors-commit", default=AUTHORS_COMMIT, help="recorded when --authors is not a git checkout")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    helper = load_helper()
    authors_commit = subprocess.run(
        ["git", "log", "-1", "--format=%H"], cwd=args.authors, capture_output=True, text=True
    ).stdout.strip() or args.authors_commit
    a = import_authors(args.authors.resolve())
    torch.manual_seed(SEED)

    manifest, released = make_manifest(a)
    (out / "weights_manifest.json").write_text(json.dumps(manifest, indent=None, separators=(",", ":")) + "\n")
    (out / "released_shapes.json").write_text(json.dumps(released, indent=None, separators=(",", ":")) + "\n")

    with tempfile.TemporaryDirectory() as folder:
        paths = helper.write_checkpoints(out / "weights_manifest.json", Path(folder))
        model = a["networks"].generator_m2m.sam_m2m.__new__(a["networks"].generator_m2m.sam_m2m)
        torch.nn.Module.__init__(model)
        model.m2m = a["SAM_Decoder_Deep"](256, M2M_LAYERS)
        model.seg_model = build_tiny_sam(a)
        model.seg_model.load_state_dict(torch.load(paths["sam_tiny.pth"], weights_only=True))  # as _build_sam does
        checkpoint = torch.load(paths["mam_tiny.pth"], weights_only=True)
        model.m2m.load_state_dict(a["utils"].remove_prefix_state_dict(checkpoint["state_dict"]), strict=True)
        model = model.eval()

    # Record the binarised guide mask M2M receives (an input of model.m2m) for diagnosis.
    original_m2m_forward = model.m2m.forward

    def m2m_forward(x_os16, img, mask):
        model.m2m_guide = mask.clone()
        return original_m2m_forward(x_os16, img, mask)

    model.m2m.forward = m2m_forward

    rng = np.random.default_rng(SEED)
    images = {name: smooth_image(rng, h, w) for name, (h, w) in IMAGE_SIZES.items()}
    second = smooth_image(rng, *IMAGE_SIZES["landscape"])
    cases: dict[str, np.ndarray] = {}

    def record(name, image_names, image_list, prompt):
        results = run_case(a, model, image_list, prompt)
        h, w = image_list[0].shape[:2]
        scale = np.array([w, h] * (2 if prompt["kind"] in ("box", "mask") else 1), np.float64)
        cases[f"{name}.kind"] = np.array(prompt["kind"])
        cases[f"{name}.images"] = np.array(image_names)
        coords = []
        for pixels in prompt["pixels"]:
            flat = (np.asarray(pixels, np.float64).reshape(-1, len(scale)) / scale).reshape(-1)
            coords.append(np.pad(flat, (0, 20 - flat.size)) if prompt["kind"] == "point" else flat)
        cases[f"{name}.coords"] = np.asarray(coords, np.float32)
        for key in results[0]:
            cases[f"{name}.{key}"] = np.stack([r[key] for r in results])
        alpha = cases[f"{name}.alpha"]
        print(f"{name}: alpha in [{alpha.min():.3f}, {alpha.max():.3f}], mean {alpha.mean():.3f}; "
              f"post_mask mean {cases[f'{name}.post_mask'].mean():.3f}")

    land, port = images["landscape"], images["portrait"]
    record("point1", ["landscape"], [land], {"kind": "point", "pixels": [[[61, 40]]]})
    record("point3", ["portrait"], [port], {"kind": "point", "pixels": [[[30, 50], [60, 70], [45, 100]]]})
    record("box", ["portrait"], [port], {"kind": "box", "pixels": [[12, 20, 80, 110]]})
    # A mask prompt: the benchmark's box from a ground-truth mask (last indices, inclusive).
    mask = np.zeros(IMAGE_SIZES["landscape"], np.uint8)
    mask[22:71, 35:97] = 1
    mask[10:30, 50:60] = 1
    ys, xs = np.nonzero(mask)
    cases["mask.prompt_map"] = mask
    record("mask", ["landscape"], [land], {"kind": "mask", "pixels": [[xs.min(), ys.min(), xs.max(), ys.max()]]})
    record("batch_point", ["landscape", "second"], [land, second], {"kind": "point", "pixels": [[[61, 40], [20, 70]], [[90, 30], [50, 50]]]})

    np.savez_compressed(out / "images.npz", landscape=land, portrait=port, second=second)
    np.savez_compressed(out / "cases.npz", **cases)
    np.savez_compressed(out / "morphology.npz", **morphology_cases(rng))
    (out / "provenance.json").write_text(json.dumps({
        "authors_repository": "SHI-Labs/Matting-Anything",
        "authors_commit": authors_commit,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": __import__("cv2").__version__,
        "pillow": __import__("PIL").__version__,
        "m2m_layers": M2M_LAYERS,
        "tiny_encoder": TINY_ENCODER,
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
