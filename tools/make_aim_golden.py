"""Make the AIM golden fixtures by running the authors' code (never imported by the pack or its tests).

Runs JizhiziLi/AIM's own ``AimNet`` and ``core/test.py`` ``inference_img`` (Hybrid) on seeded
images with a reduced network (fewer residual blocks; the authors' widths) filled with seeded
random weights, and writes under ``tests/golden/aim/``:

- ``manifest.json``: the checkpoint's keys in the released layout (``{'state_dict': ...}``,
  ``resnet.*`` and the ``encoderN.*`` copies of the same modules, the unused ``resnet.fc``) with
  shapes, dtypes and which keys are the same tensor as another; the weights themselves are
  rebuilt by ``fill_state_dict`` below (the test has its own copy of the rule and checks it
  against ``weights_digest``);
- ``images/*.png``: the uint8 RGB inputs; ``cases.npz``: the authors' outputs (float32) and the
  intermediate trimaps;
- ``resize_cases.npz``: scikit-image 0.14.5 ``resize`` and OpenCV ``resize`` results on small
  arrays, for the bit-exactness tests of our reproductions.

Command (see tests/golden/aim/README.md for the environment):
    PYTHONPATH=<authors>/core:<scikit-image-0.14.5 build> python tools/make_aim_golden.py \\
        --authors <authors checkout> --out tests/golden/aim
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import os
import subprocess
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

SEED = 20261129
BLOCKS = (2, 1, 2, 1)  # residual blocks in layer1..layer4 (the release: 3, 4, 6, 3)
# (height, width) of the seeded single images; the batch is two images of BATCH_SIZE.
SINGLE_SIZES = ((200, 300), (333, 257))
BATCH_SIZE = (160, 224)
# Shorter side over 1080 (the 1080 rule and the resize back); its alpha is stored sampled, see main.
LARGE_SIZE = (1100, 1088)
LARGE_ALPHA_STEP = 7
# The encoderN.* entries are the same modules as resnet.*: alias -> original prefix.
ALIASES = (("encoder0.0.", "resnet.conv1."), ("encoder0.1.", "resnet.bn1."), ("encoder1.0.", "resnet.layer1."),
           ("encoder2.", "resnet.layer2."), ("encoder3.", "resnet.layer3."), ("encoder4.", "resnet.layer4."))


def alias_of(key: str) -> str | None:
    for alias, original in ALIASES:
        if key.startswith(alias):
            return original + key[len(alias):]
    return None


def fill_state_dict(manifest: dict) -> dict[str, torch.Tensor]:
    """The deterministic fill: one torch.Generator seeded with ``manifest['seed']``; keys that are
    not aliases in sorted order; per key by its role:

    - ``*.num_batches_tracked``: 0 (int64);
    - ``*.running_mean``: 0.1 * randn; ``*.running_var``: 0.5 + rand;
    - 1-D ``*.weight`` (BatchNorm scale): 1 + 0.1 * randn; 1-D ``*.bias``: 0.1 * randn;
    - other ``*.weight``: randn * sqrt(2 / fan_in) (fan_in = product of the shape after the first dim).

    Aliases (``encoderN.*``) are the same tensor objects as their ``resnet.*`` originals.
    """
    generator = torch.Generator().manual_seed(manifest["seed"])
    entries = manifest["tensors"]
    state: dict[str, torch.Tensor] = {}
    for key in sorted(k for k, e in entries.items() if e.get("alias_of") is None):
        shape = tuple(entries[key]["shape"])
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros(shape, dtype=torch.int64)
        elif key.endswith("running_mean"):
            state[key] = 0.1 * torch.randn(shape, generator=generator)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif len(shape) == 1 and key.endswith("weight"):
            state[key] = 1 + 0.1 * torch.randn(shape, generator=generator)
        elif len(shape) == 1:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
        else:
            state[key] = torch.randn(shape, generator=generator) * math.sqrt(2.0 / math.prod(shape[1:]))
    for key, entry in entries.items():
        if entry.get("alias_of") is not None:
            state[key] = state[entry["alias_of"]]
    return {key: state[key] for key in entries}  # the file's own key order


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].contiguous().numpy().tobytes())
    return digest.hexdigest()


def seeded_image(height: int, width: int, seed: int, noise: float = 0.03) -> np.ndarray:
    """A uint8 RGB image with structure (a bright blob on a textured background, smooth edges)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    radius = rng.uniform(0.2, 0.35) * min(height, width)
    blob = 1 / (1 + np.exp((np.hypot(y - cy, x - cx) - radius) / 4))
    background = 0.5 + 0.25 * np.sin(x / rng.uniform(5, 15)) * np.cos(y / rng.uniform(5, 15))
    colour = rng.uniform(0.2, 1.0, size=3)
    image = blob[..., None] * colour + (1 - blob[..., None]) * background[..., None] * rng.uniform(0.3, 1.0, size=3)
    image += rng.normal(0, noise, size=image.shape)
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)


def authors_model(authors: Path):
    """The authors' AimNet with BLOCKS residual blocks and no ImageNet weights loaded."""
    aimnet = importlib.import_module("network.AimNet")
    resnet_mp = importlib.import_module("network.resnet_mp")
    # resnet34_mp() loads an ImageNet checkpoint we do not have; build the same class without it.
    aimnet.resnet34_mp = lambda: resnet_mp.ResNet(resnet_mp.BasicBlock, list(BLOCKS))
    return aimnet.AimNet()


def authors_predict(test_module, model, image: np.ndarray) -> dict[str, np.ndarray]:
    """``test_samples``' steps for one image, without its file writes: the 1080 rule (OpenCV
    bilinear on uint8), ``inference_img`` (HYBRID), the 0-255 alpha resized back with OpenCV
    (then divided by 255: ``test_samples`` casts it to uint8 for its PNG, we keep the floats);
    plus the 1/4 run's trimap for diagnosis."""
    import cv2

    args = types.SimpleNamespace(cuda=False, test_choice="HYBRID")
    h, w, _ = image.shape
    limit = test_module.SHORTER_PATH_LIMITATION
    if min(h, w) > limit:
        if h >= w:
            image = cv2.resize(image, (limit, int(limit * h / w)), interpolation=cv2.INTER_LINEAR)
        else:
            image = cv2.resize(image, (int(limit * w / h), limit), interpolation=cv2.INTER_LINEAR)
    captured = {}
    original_once = test_module.inference_once

    def capturing_once(args_, model_, scale_img, scale_trimap=None):
        result = original_once(args_, model_, scale_img, scale_trimap)
        captured.setdefault("trimap_quarter", result[0])
        return result

    test_module.inference_once = capturing_once
    try:
        with torch.no_grad():
            predict = test_module.inference_img(args, model, image)
    finally:
        test_module.inference_once = original_once
    if predict.shape != (h, w):
        predict = cv2.resize(predict * 255.0, (w, h), interpolation=cv2.INTER_LINEAR) / 255.0
    return {"alpha": predict.astype(np.float32), "trimap_quarter": captured["trimap_quarter"].astype(np.uint8)}


def resize_cases(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """scikit-image 0.14.5 and OpenCV results our reproductions must equal."""
    import cv2
    import skimage
    from skimage.transform import resize

    assert skimage.__version__ == "0.14.5", skimage.__version__
    cases: dict[str, np.ndarray] = {}
    image = rng.integers(0, 256, size=(61, 47, 3), dtype=np.uint8)
    cases["sk.image"] = image
    for out in ((32, 64), (128, 96), (20, 15)):
        cases[f"sk.image.{out[0]}x{out[1]}"] = resize(image, out)
    trimap = rng.choice(np.array([0, 128, 255], dtype=np.uint8), size=(32, 64))
    trimap[8:24, 16:48] = 255
    trimap[:, :4] = 0
    cases["sk.trimap"] = trimap
    for out in ((120, 180), (96, 96), (150, 117)):
        cases[f"sk.trimap.{out[0]}x{out[1]}"] = resize(trimap, out) * 255.0
    local = rng.random((48, 64)).astype(np.float32)
    cases["sk.local"] = local
    cases["sk.local.100x150"] = resize(local, (100, 150))
    # The transform scikit-image estimates, for many size pairs.
    from skimage.transform import AffineTransform

    pairs, params = [], []
    for in_h, in_w, out_h, out_w in [(32, 64, 200, 300), (64, 64, 333, 257), (32, 32, 160, 160), (96, 64, 384, 300),
                                     (512, 544, 1080, 1091), (256, 256, 1080, 1080), (61, 47, 32, 64), (40, 50, 1, 1)]:
        if out_h == 1 and out_w == 1:
            continue
        src = np.array([[1, 1], [1, out_h], [out_w, out_h]]) - 1
        dst = np.zeros(src.shape, dtype=np.double)
        dst[:, 0] = in_w / out_w * (src[:, 0] + 0.5) - 0.5
        dst[:, 1] = in_h / out_h * (src[:, 1] + 0.5) - 0.5
        tform = AffineTransform()
        tform.estimate(src, dst)
        pairs.append((in_h, in_w, out_h, out_w))
        params.append((tform.params[1, 1], tform.params[1, 2], tform.params[0, 0], tform.params[0, 2]))
    cases["sk.transform.sizes"] = np.array(pairs, dtype=np.int64)
    cases["sk.transform.params"] = np.array(params, dtype=np.float64)
    # OpenCV INTER_LINEAR on uint8 (the 1080 rule) and on float64 (the alpha resized back).
    big = rng.integers(0, 256, size=(90, 130, 3), dtype=np.uint8)
    cases["cv.image"] = big
    for out_h, out_w in ((61, 83), (45, 65), (37, 101), (90, 130), (131, 200)):
        cases[f"cv.image.{out_h}x{out_w}"] = cv2.resize(big, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    alpha = rng.random((50, 70)) * 255.0
    cases["cv.alpha"] = alpha
    for out_h, out_w in ((77, 101), (100, 140), (31, 45)):
        cases[f"cv.alpha.{out_h}x{out_w}"] = cv2.resize(alpha, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    cases["versions"] = np.array([skimage.__version__, cv2.__version__, np.__version__, torch.__version__])
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", type=Path, required=True, help="checkout of JizhiziLi/AIM")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    from PIL import Image

    test_module = importlib.import_module("test")  # the authors' core/test.py (on PYTHONPATH)
    model = authors_model(args.authors)
    state = model.state_dict()
    manifest = {
        "seed": SEED,
        "blocks": list(BLOCKS),
        "layout": "{'state_dict': <tensors>} as the released aimnet_pretrained_matting.pth",
        "tensors": {
            key: {"shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", ""), "alias_of": alias_of(key)}
            for key, value in state.items()
        },
    }
    filled = fill_state_dict(manifest)
    model.load_state_dict(filled, strict=True)
    model.eval()
    manifest["weights_digest"] = weights_digest(filled)
    with tempfile.TemporaryDirectory() as tmp:  # the checkpoint the authors' loader reads, as released
        path = Path(tmp) / "aimnet_pretrained_matting.pth"
        torch.save({"state_dict": model.state_dict()}, path)
        reloaded = type(model)()  # patched constructor: same reduced network
        reloaded.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"], strict=True)
        manifest["file_bytes"] = path.stat().st_size
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "images").mkdir(exist_ok=True)
    outputs: dict[str, np.ndarray] = {}
    items = [(f"single{i}", size, SEED + i) for i, size in enumerate(SINGLE_SIZES)]
    items += [(f"batch{i}", BATCH_SIZE, SEED + 100 + i) for i in range(2)]
    for name, (height, width), seed in items:
        image = seeded_image(height, width, seed)
        Image.fromarray(image).save(args.out / "images" / f"{name}.png")
        result = authors_predict(test_module, model, image)
        for key, value in result.items():
            outputs[f"{name}.{key}"] = value
        unknown = float(((result["trimap_quarter"] != 0) & (result["trimap_quarter"] != 255)).mean())
        print(f"{name}: {width}x{height}, quarter trimap unknown fraction {unknown:.2f}, classes {np.unique(result['trimap_quarter'])}")
    # The large case: its PNG without noise (small file); its alpha every LARGE_ALPHA_STEP-th
    # row and column plus the full 64x64 corners (the whole float map would be ~4 MB).
    image = seeded_image(*LARGE_SIZE, SEED + 200, noise=0.0)
    Image.fromarray(image).save(args.out / "images" / "large0.png", optimize=True)
    result = authors_predict(test_module, model, image)
    outputs["large0.alpha_sampled"] = result["alpha"][::LARGE_ALPHA_STEP, ::LARGE_ALPHA_STEP]
    outputs["large0.alpha_top_left"] = result["alpha"][:64, :64]
    outputs["large0.alpha_bottom_right"] = result["alpha"][-64:, -64:]
    outputs["large0.trimap_quarter"] = result["trimap_quarter"]
    unknown = float((result["trimap_quarter"] == 128).mean())
    print(f"large0: {LARGE_SIZE[1]}x{LARGE_SIZE[0]}, quarter trimap unknown fraction {unknown:.2f}, classes {np.unique(result['trimap_quarter'])}")
    np.savez_compressed(args.out / "cases.npz", **outputs)
    np.savez_compressed(args.out / "resize_cases.npz", **resize_cases(np.random.default_rng(SEED)))
    commit = subprocess.run(["git", "-C", str(args.authors), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    manifest["authors_commit"] = commit or os.environ.get("AIM_COMMIT", "unknown")
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
