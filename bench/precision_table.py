"""How far half-precision UNets move the matte: every golden fixture, every prompt kind.

    python bench/precision_table.py [GOLDEN_DIR]

For each fixture the model runs in fp32, fp16 and bf16 (UNet and text encoder in that precision, the
autoencoder always fp32, as ``load_matting_model`` does) on every case of ``cases.npz``, and the
table gives, against the fp32 alpha: the largest per-pixel difference (max-abs), the mean one, and
the share of pixels that move by more than 1/255 (a visible step in an 8-bit matte). The authors'
own outputs (fp32) are in the last column for scale: our fp32 against them.

Runs on the CPU, where fp16 and bf16 arithmetic is emulated with the same roundings a GPU applies
to the stored values (matmul accumulations may differ by kernel).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent


def _engine():
    """The pack's ``models`` as package ``promptmatte_models`` from this checkout (no sys.path edit)."""
    spec = importlib.util.spec_from_file_location(
        "promptmatte_models", REPO / "models" / "__init__.py", submodule_search_locations=[str(REPO / "models")]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["promptmatte_models"] = module
    spec.loader.exec_module(module)
    return module


def _cases(folder: Path):
    data = np.load(folder / "cases.npz")
    image = torch.from_numpy(data["image"])[None]
    kinds = {"point_mask": "point", "bbox_mask": "box", "mask": "mask", "trimap": "trimap", "auto_mask": "auto"}
    for name, kind in kinds.items():
        for flag in ("trans0", "trans1"):
            key = f"{name}.{flag}"
            yield (
                key,
                (image, torch.from_numpy(data[f"{key}.map"])[None, None], torch.from_numpy(data[f"{key}.coords"])[None],
                 kind, torch.tensor([flag == "trans1"])),
                torch.from_numpy(data[f"{key}.alpha"]),
            )


def main(golden: Path) -> None:
    engine = _engine()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print("| fixture | precision | max-abs vs fp32 | mean-abs vs fp32 | pixels > 1/255 | our fp32 vs authors' (max-abs) |")
    print("|---|---|---|---|---|---|")
    for folder in sorted(p for p in golden.iterdir() if (p / "cases.npz").is_file()):
        models = {name: engine.load_matting_model(folder / "model.safetensors", dtype=dtype)
                  for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16))}
        stats = {name: [] for name in ("fp16", "bf16")}
        reference_error = 0.0
        for _, args, expected in _cases(folder):
            fp32 = models["fp32"](*args)[0, 0]
            reference_error = max(reference_error, float((fp32 - expected).abs().max()))
            for name in stats:
                diff = (models[name](*args)[0, 0] - fp32).abs()
                stats[name].append((float(diff.max()), float(diff.mean()), float((diff > 1 / 255).float().mean())))
        for name, rows in stats.items():
            worst = max(r[0] for r in rows)
            mean = sum(r[1] for r in rows) / len(rows)
            visible = max(r[2] for r in rows)
            print(f"| {folder.name} | {name} | {worst:.2e} | {mean:.2e} | {visible:.1%} | {reference_error:.1e} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "golden")
