"""Benchmark: SEMat (SAM ViT-L variant) at its released size on this CPU (latency, peak memory, our estimate).

    .venv/bin/python bench/bench_semat.py [--sizes 1024] [--threads N] [--keep DIR]

Writes a random SEMat_SAM.pth in the released layout and shapes (names and shapes from
tests/golden/semat/released_shapes.json, detectron2's {'model': ...} with peft names; values by
the golden fill rule, tests/semat_golden.py, so activations stay in range) to a temporary folder
(or DIR), then per size, in a fresh subprocess: loads it through the family's ``load`` (meta
device + assign, memory-mapped, LoRA merged), touches every weight (so the pages are resident
before measuring), and times one forward on a seeded image with a box over its middle. SEMat
always works in the 1024² frame, so the cost barely depends on the input size. Prints load
seconds, seconds per image, the process's peak RSS, the forward's extra peak over the resident
size before it (weights excluded) and ``inference_memory_bytes`` for that size.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import tempfile
import time
from pathlib import Path

from _pack import import_engine as _import_engine, memory_bytes, restart_peak, run_child  # noqa: E402  (bench/ is the script's folder)

REPO = Path(__file__).resolve().parent.parent
FILE = "SEMat_SAM.pth"
FILL_SEED = 1234




def write_file(folder: Path) -> None:
    """The golden fill rule (tests/golden/semat/README.md) on the released SEMat (SAM) shapes."""
    import torch

    released = json.loads((REPO / "tests" / "golden" / "semat" / "released_shapes.json").read_text())
    shapes = {k: tuple(v) for k, v in released["SEMat_SAM"]["shapes"].items()}
    state = {}
    for index, key in enumerate(sorted(shapes)):
        shape = shapes[key]
        generator = torch.Generator().manual_seed(FILL_SEED + index)
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros(shape, dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif len(shape) >= 2:
            state[key] = torch.randn(shape, generator=generator) / math.sqrt(math.prod(shape[1:]))
        elif key.endswith(".weight"):
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        else:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
    ordered = {key: state[key] for key in shapes}  # the module's order, as the checkpointer writes
    torch.save({"model": ordered, "trainer": {"iteration": 59999, "hooks": {}}, "iteration": 59999}, folder / FILE)


def measure(folder: Path, size: int, threads: int) -> dict:
    """In this process (a fresh child): load, one timed forward at size x size."""

    import torch

    torch.set_num_threads(threads)
    engine = _import_engine()
    semat = importlib.import_module("promptmatte.semat")
    checkpoint = importlib.import_module("promptmatte.checkpoint")
    del engine

    start = time.perf_counter()
    model = semat.FAMILY.load(checkpoint.read_weights(folder / FILE), source_name=FILE, device="cpu")
    load_seconds = time.perf_counter() - start
    with torch.inference_mode():
        touched = sum(float(p.float().sum()) for p in model.parameters())  # page every weight in
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=generator)
    coords = torch.tensor([[0.2, 0.15, 0.8, 0.9]])
    restart_peak()
    before = memory_bytes("VmRSS")
    start = time.perf_counter()
    alpha = model(image, None, coords, "box")
    seconds = time.perf_counter() - start
    extra = memory_bytes("VmHWM") - before
    return {
        "size": size,
        "load_s": load_seconds,
        "forward_s": seconds,
        "peak_rss_gb": memory_bytes("VmHWM") / 1e9,
        "extra_gb": extra / 1e9,
        "estimate_gb": model.inference_memory_bytes(1, size, size) / 1e9,
        "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "alpha_mean": float(alpha.mean()),
        "touched": touched,
        "threads": threads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="folder for the random file (kept; reused when present)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child[0]), int(args.child[1]), args.threads)))
        return
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / FILE).is_file():
            write_file(folder)
        print(f"{'size':>6} {'params M':>9} {'load s':>7} {'s/image':>8} {'peak RSS GB':>12} {'forward extra GB':>17} {'estimate GB':>12}")
        for size in args.sizes:
            row = run_child(__file__, "--threads", args.threads, "--child", folder, size)
            print(
                f"{row['size']:>6} {row['parameters_m']:>9.1f} {row['load_s']:>7.2f} {row['forward_s']:>8.1f} "
                f"{row['peak_rss_gb']:>12.2f} {row['extra_gb']:>17.2f} {row['estimate_gb']:>12.2f}"
            )


if __name__ == "__main__":
    main()
