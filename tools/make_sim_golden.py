"""Make tests/golden/sim/: SIM's authors' inference path run on seeded images with random weights.

    PYTHONPATH=AUTHORS_CODE_DIR python tools/make_sim_golden.py AUTHORS_CODE_DIR [OUT_DIR] [--commit SHA] [--work DIR]

AUTHORS_CODE_DIR is an export of github.com/nowsyn/SIM (scripts/, networks/, data/, utils/). This
script is never imported by the pack or its tests; run it in a scratch environment with what their
code imports, e.g.

    python3 -m venv /tmp/scratch/venv-sim
    /tmp/scratch/venv-sim/bin/pip install torch==2.14.1 torchvision==0.29.1 opencv-python-headless numpy scipy easydict toml

What it does:

1. Builds both networks with the authors' constructors in a reduced configuration: one bottleneck
   block per ResNet stage instead of (3, 4, 6, 3) (``networks.resnet_bn.l_resnet50`` and
   ``networks.resnet.resnet50`` are replaced by the same ``ResNet`` classes with blocks (1, 1, 1, 1),
   without the ImageNet weights the matting constructor would read), ASPP branches of 32 channels
   instead of 256; everything else as config/sim.toml (11 input channels, atrous rates 12/24/36,
   4-channel 20-class classifier).
2. Fills every tensor of both state dicts by FILL RULE (below) and saves them in the released
   layouts: ``ckpt_best.pth`` = {'epoch', 'state_dict', 'best_sad'} with ``encoder.*``/``decoder.*``
   keys, ``classifier_resnet50_best.pth.tar`` = {'state_dict'} with ``module.``-prefixed keys.
   The files are too big to commit (~90 MB): ``manifest.json`` lists each file's entries, its
   tensors' names, shapes and dtypes and their float64 sums, from which the test rebuilds them.
3. Loads them through the authors' ``build_sim_model`` / ``build_classifier`` and runs their
   ``run()`` from scripts/main.py (task 'Adobe': files from merged/, trimap/, alpha/) on the seeded
   cases, capturing the float prediction handed to ``save_prediction``, the semantic trimap from
   ``extract_semantic_trimap_whole`` and the click maps from ``preprocess``.
4. Also writes ``full_manifest.json``: names and shapes of the released files' full configuration
   (blocks (3, 4, 6, 3), ASPP 256), from the same constructors.

FILL RULE (tensors in sorted key order, index i from 0, per file; seed 1 for ckpt_best.pth, 2 for
the classifier): generator = torch.Generator().manual_seed(seed * 100000 + i), then
integer tensors: zeros; ``*running_var``: 0.5 + rand, times the fan_in of the
weight-standardised convolution before it for ``decoder.P.<i>.running_var`` when ``decoder.P.<i-1>.weight``
is 4-D (else times 1); ``*running_mean``: 0.1 * randn;
other 1-D ``*weight``: 1 + 0.1 * randn; ``*bias``: 0.1 * randn; everything else (convolution and
linear weights): randn * sqrt(2 / fan_in), fan_in = product of the shape after the first axis.
All float32, drawn with the generator in that order of keys.

Outputs (OUT_DIR, default tests/golden/sim): inputs/<case>.png (RGB), inputs/<case>_trimap.png
(0/128/255), manifest.json, full_manifest.json, outputs.npz with, per case: ``<case>.alpha``
(float32 H x W, what run() saves), and when the trimap has unknown pixels
``<case>.classes`` (int8, argmax of the semantic trimap over its 20 channels at unknown pixels,
-1 elsewhere, unpadded), ``<case>.semantic_sum`` (float64 per-channel sums over the unpadded
image), ``<case>.samples`` (int64 (N, 2) row, col), ``<case>.semantic_at`` (float32 (N, 20)) and
``<case>.clicks_at`` (float32 (N, 6)) at those pixels; ``cases`` and ``meta`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import torch

from _authors_code import require_importable  # tools/ is this script's folder

REDUCED_BLOCKS = [1, 1, 1, 1]
REDUCED_ASPP = 32
MATTING_SEED, CLASSIFIER_SEED = 1, 2
SAMPLES_PER_CASE = 2048

# (name, height, width, seed). small: under 320 (both window passes see only a bottom-right crop);
# medium: 320 windows tile normally, the 800 pass is the crop; wide: over 800 px wide (the 800
# windows tile along x), short in y; small_b: same size as small (the test batches the two);
# no_unknown: a trimap of sure pixels only.
CASES = [
    ("small", 130, 150, 11),
    ("small_b", 130, 150, 12),
    ("medium", 347, 413, 13),
    ("wide", 61, 850, 14),
    ("no_unknown", 40, 56, 15),
]


def fill_state(shapes: dict[str, tuple[tuple[int, ...], str]], seed: int) -> dict[str, torch.Tensor]:
    """FILL RULE (see the module docstring): key -> tensor, deterministic."""
    out = {}
    for index, key in enumerate(sorted(shapes)):
        shape, dtype = shapes[key]
        generator = torch.Generator().manual_seed(seed * 100000 + index)
        if not dtype.startswith("torch.float"):
            out[key] = torch.zeros(shape, dtype=getattr(torch, dtype.split(".")[1]))
        elif key.endswith("running_var"):
            out[key] = (0.5 + torch.rand(shape, generator=generator)) * standardised_fan_in(shapes, key)
        elif key.endswith("running_mean"):
            out[key] = 0.1 * torch.randn(shape, generator=generator)
        elif len(shape) == 1 and key.endswith("weight"):
            out[key] = 1 + 0.1 * torch.randn(shape, generator=generator)
        elif key.endswith("bias"):
            out[key] = 0.1 * torch.randn(shape, generator=generator)
        else:
            out[key] = torch.randn(shape, generator=generator) * math.sqrt(2.0 / math.prod(shape[1:]))
    return out


def standardised_fan_in(shapes: dict, key: str) -> int:
    """fan_in of the weight-standardised convolution a decoder batch norm follows, else 1.

    Standardised filters have unit deviation whatever their size, so their outputs are about
    sqrt(fan_in) times those of fan-in-scaled ones: the trained statistics after them are that large.
    """
    module, _, _ = key.rpartition(".")
    parent, _, index = module.rpartition(".")
    conv = f"{parent}.{int(index) - 1}.weight" if index.isdigit() else ""
    if key.startswith("decoder.") and conv in shapes and len(shapes[conv][0]) == 4:
        return math.prod(shapes[conv][0][1:])
    return 1


def shapes_of(state: dict) -> dict[str, tuple[tuple[int, ...], str]]:
    return {key: (tuple(value.shape), str(value.dtype)) for key, value in state.items()}


def manifest_entry(state: dict) -> dict:
    return {
        key: {"shape": list(value.shape), "dtype": str(value.dtype), "sum": float(value.double().sum())}
        for key, value in sorted(state.items())
    }


def matting_args(aspp: int):
    from easydict import EasyDict

    return EasyDict(
        {
            "arch": {"encoder": "resnet50_BN", "n_channel": 11, "atrous_rates": [12, 24, 36], "aspp_channel": aspp},
            "pretrain_checkpoint": None,
            "resume_checkpoint": None,
        }
    )


def build_authors_networks(blocks, aspp):
    """The authors' matting model and classifier with ``blocks`` per stage (random init)."""
    import networks.resnet as resnet
    import networks.resnet_bn as resnet_bn
    from networks.model import build_model

    resnet_bn.l_resnet50 = lambda pretrained=False: resnet_bn.ResNet(resnet_bn.Bottleneck, blocks, inplanes=128)
    resnet.resnet50 = lambda inc, pretrained=False, progress=True, **kw: resnet._resnet(
        "resnet50", inc, resnet.Bottleneck, blocks, False, progress, **kw
    )
    matting = build_model(matting_args(aspp))
    classifier = resnet.resnet50(4, num_classes=20, pretrained=False)
    return matting, classifier


def make_case(height: int, width: int, seed: int, with_unknown: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A textured RGB image and a trimap around a blob (0/128/255), both uint8."""
    rng = np.random.default_rng(seed)
    low = rng.random((max(2, height // 16), max(2, width // 16), 3)).astype(np.float32)
    image = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    image = np.clip(image + 0.15 * rng.standard_normal((height, width, 3)), 0, 1)
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
    ry, rx = rng.uniform(0.2, 0.35) * height, rng.uniform(0.2, 0.35) * width
    angle = np.arctan2(yy - cy, xx - cx)
    wobble = 1 + 0.15 * np.sin(5 * angle + rng.uniform(0, 6))
    radius = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) / wobble
    blob = radius < 1
    image[blob] = 0.6 * image[blob] + 0.4 * np.array(rng.random(3))
    trimap = np.where(blob, 255, 0).astype(np.uint8)
    if with_unknown:
        band = np.abs(radius - 1) < 0.18
        trimap[band] = 128
        trimap[rng.random((height, width)) < 0.002] = 128  # a few isolated unknown pixels
    return (image * 255).round().astype(np.uint8), trimap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("authors")
    parser.add_argument("out", nargs="?", default=str(Path(__file__).resolve().parent.parent / "tests" / "golden" / "sim"))
    parser.add_argument("--commit", default=None)
    parser.add_argument("--work", default="/tmp/scratch/sim/golden_work")
    args = parser.parse_args()

    authors = Path(args.authors).resolve()
    require_importable(["scripts", "networks"], [authors])
    sys.argv = [sys.argv[0]]
    import scripts.main as authors_main  # noqa: E402  (parses no arguments on import)

    commit = args.commit
    if commit is None:
        try:
            commit = subprocess.check_output(["git", "-C", str(authors), "rev-parse", "HEAD"], text=True).strip()
        except (subprocess.CalledProcessError, FileNotFoundError):
            commit = "unknown"

    out = Path(args.out)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    for sub in ("ckpt", "data/merged", "data/trimap", "data/alpha", "vis", "log"):
        (work / sub).mkdir(parents=True)
    (out / "inputs").mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    # The released layout (names and shapes only).
    full_matting, full_classifier = build_authors_networks([3, 4, 6, 3], 256)
    full_manifest = {
        "ckpt_best.pth": {k: list(v.shape) for k, v in full_matting.state_dict().items()},
        "classifier_resnet50_best.pth.tar": {"module." + k: list(v.shape) for k, v in full_classifier.state_dict().items()},
    }
    del full_matting, full_classifier

    matting, classifier = build_authors_networks(REDUCED_BLOCKS, REDUCED_ASPP)
    matting_state = fill_state(shapes_of(matting.state_dict()), MATTING_SEED)
    classifier_state = fill_state(shapes_of(classifier.state_dict()), CLASSIFIER_SEED)
    matting_file = work / "ckpt" / "ckpt_best.pth"
    classifier_file = work / "ckpt" / "classifier_resnet50_best.pth.tar"
    torch.save({"epoch": 0, "state_dict": matting_state, "best_sad": 0.0}, matting_file)
    torch.save({"state_dict": {"module." + k: v for k, v in classifier_state.items()}}, classifier_file)
    manifest = {
        "fill_rule": "see tools/make_sim_golden.py (FILL RULE) and README.md",
        "ckpt_best.pth": {
            "seed": MATTING_SEED,
            "entries": {"epoch": 0, "best_sad": 0.0},
            "state_dict_prefix": "",
            "tensors": manifest_entry(matting_state),
        },
        "classifier_resnet50_best.pth.tar": {
            "seed": CLASSIFIER_SEED,
            "entries": {},
            "state_dict_prefix": "module.",
            "tensors": manifest_entry(classifier_state),
        },
    }

    logger = logging.getLogger("sim-golden")
    logging.basicConfig(level=logging.INFO)
    from easydict import EasyDict

    classifier_args = EasyDict(
        {"arch": "resnet50", "n_channel": 4, "num_classes": 20, "load_size": 320, "resume_checkpoint": str(classifier_file)}
    )
    model_args = matting_args(REDUCED_ASPP)
    model_args.resume_checkpoint = str(matting_file)
    authors_classifier = authors_main.build_classifier(classifier_args, logger)
    authors_model = authors_main.build_sim_model(model_args, logger)

    for name, height, width, seed in CASES:
        image, trimap = make_case(height, width, seed, with_unknown=name != "no_unknown")
        cv2.imwrite(str(work / "data/merged" / f"{name}.png"), image[:, :, ::-1])  # BGR on disk via OpenCV
        cv2.imwrite(str(work / "data/trimap" / f"{name}.png"), trimap)
        cv2.imwrite(str(work / "data/alpha" / f"{name}.png"), trimap)  # only for run()'s SAD line
        cv2.imwrite(str(out / "inputs" / f"{name}.png"), image[:, :, ::-1])
        cv2.imwrite(str(out / "inputs" / f"{name}_trimap.png"), trimap)

    captured: dict[str, dict] = {}
    order = sorted(name for name, *_ in CASES)  # run() walks sorted(glob(merged/*.png))
    current = {"index": -1}
    original_preprocess = authors_main.preprocess
    original_semantic = authors_main.extract_semantic_trimap_whole

    def preprocess(alpha_path, trimap_path, image_path, stride=8):
        current["index"] += 1
        inputs = original_preprocess(alpha_path, trimap_path, image_path, stride)
        name = Path(image_path).stem
        assert name == order[current["index"]]
        captured[name] = {"clicks": inputs["trimap_clks"][0].numpy().copy(), "trimap": inputs["trimap"][0, 0].numpy().copy()}
        return inputs

    def semantic(cfg, model, image, trimap, thresh=0.1):
        smap = original_semantic(cfg, model, image, trimap, thresh)
        captured[order[current["index"]]]["semantic"] = smap[0].numpy().copy()
        return smap

    def save_prediction(pred, save_path):
        captured[Path(save_path).stem]["alpha"] = pred[0, 0].numpy().astype(np.float32).copy()

    authors_main.preprocess = preprocess
    authors_main.extract_semantic_trimap_whole = semantic
    authors_main.save_prediction = save_prediction
    authors_main.device = torch.device("cpu")
    cfg = SimpleNamespace(
        task="Adobe",
        data=SimpleNamespace(test_dir=str(work / "data")),
        classifier=classifier_args,
        log=SimpleNamespace(visualize_path=str(work / "vis")),
    )
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    authors_main.run(cfg, authors_model, authors_classifier, logger)

    arrays: dict[str, np.ndarray] = {}
    for name, height, width, seed in CASES:
        result = captured[name]
        arrays[f"{name}.alpha"] = result["alpha"]
        trimap = result["trimap"][:height, :width]
        unknown = trimap == 128
        if not unknown.any():
            continue
        semantic_map = result["semantic"][:, :height, :width]
        classes = np.where(unknown, semantic_map.argmax(axis=0), -1).astype(np.int8)
        rng = np.random.default_rng(1000 + seed)
        # Half the samples in the unknown region (where the semantic map is not zero), half anywhere.
        rows, cols = np.nonzero(unknown)
        pick = rng.choice(rows.size, SAMPLES_PER_CASE // 2, replace=rows.size < SAMPLES_PER_CASE // 2)
        anywhere = np.stack([rng.integers(0, height, SAMPLES_PER_CASE // 2), rng.integers(0, width, SAMPLES_PER_CASE // 2)], 1)
        samples = np.concatenate([np.stack([rows[pick], cols[pick]], 1), anywhere]).astype(np.int64)
        arrays[f"{name}.classes"] = classes
        arrays[f"{name}.semantic_sum"] = semantic_map.astype(np.float64).sum(axis=(1, 2))
        arrays[f"{name}.samples"] = samples
        arrays[f"{name}.semantic_at"] = semantic_map[:, samples[:, 0], samples[:, 1]].T.astype(np.float32)
        arrays[f"{name}.clicks_at"] = result["clicks"][:, samples[:, 0], samples[:, 1]].T.astype(np.float32)
        inside = result["alpha"][unknown]
        print(f"{name}: alpha in (0, 1) at {np.mean((inside > 0) & (inside < 1)):.0%} of unknown pixels, classes {np.bincount(classes[unknown], minlength=20)}")

    meta = {
        "authors_repository": "https://github.com/nowsyn/SIM",
        "authors_commit": commit,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "reduced_blocks": REDUCED_BLOCKS,
        "reduced_aspp_channels": REDUCED_ASPP,
        "cases": [{"name": n, "height": h, "width": w, "seed": s} for n, h, w, s in CASES],
    }
    arrays["cases"] = np.array([name for name, *_ in CASES])
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(out / "outputs.npz", **arrays)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (out / "full_manifest.json").write_text(json.dumps(full_manifest) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
