"""Benchmark: SIM at its released size on this CPU (latency, peak memory, our estimate).

    .venv/bin/python bench/bench_sim.py [--sizes 1024] [--threads N] [--keep DIR]

Writes both of SIM's files with random weights in the released layouts and shapes (names and
shapes from tests/golden/sim/full_manifest.json: ResNet-50 blocks, ASPP 256; values by the golden
fill rule, so activations stay in range) to a temporary folder (or DIR), then per size, in a fresh
subprocess: loads them through the family's ``load`` (meta device + assign, memory-mapped), runs a
64 x 64 warm-up, and times one forward on a seeded image with a trimap whose unknown band is a
ring around the centre (about a quarter of the image). Prints load seconds, seconds per image,
the process's peak RSS, the forward's extra peak over the resident size before it (weights
excluded: already paged in by the warm-up) and ``inference_memory_bytes`` for that size.
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
FILES = ("ckpt_best.pth", "classifier_resnet50_best.pth.tar")




def _fill(shapes: dict[str, tuple], seed: int):
    """The golden fill rule (tests/golden/sim/README.md) on the released shapes."""
    import torch

    def standardised_fan_in(key):
        module = key.rpartition(".")[0]
        parent, _, index = module.rpartition(".")
        conv = f"{parent}.{int(index) - 1}.weight" if index.isdigit() else ""
        return math.prod(shapes[conv][1:]) if key.startswith("decoder.") and len(shapes.get(conv, ())) == 4 else 1

    out = {}
    for index, key in enumerate(sorted(shapes)):
        shape = shapes[key]
        generator = torch.Generator().manual_seed(seed * 100000 + index)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros(shape, dtype=torch.long)
        elif key.endswith("running_var"):
            out[key] = (0.5 + torch.rand(shape, generator=generator)) * standardised_fan_in(key)
        elif key.endswith("running_mean"):
            out[key] = 0.1 * torch.randn(shape, generator=generator)
        elif len(shape) == 1 and key.endswith("weight"):
            out[key] = 1 + 0.1 * torch.randn(shape, generator=generator)
        elif key.endswith("bias"):
            out[key] = 0.1 * torch.randn(shape, generator=generator)
        else:
            out[key] = torch.randn(shape, generator=generator) * math.sqrt(2.0 / math.prod(shape[1:]))
    return out


def write_files(folder: Path) -> None:
    import torch

    full = json.loads((REPO / "tests" / "golden" / "sim" / "full_manifest.json").read_text())
    matting = _fill({k: tuple(v) for k, v in full[FILES[0]].items()}, 1)
    torch.save({"epoch": 0, "state_dict": matting, "best_sad": 0.0}, folder / FILES[0])
    classifier = _fill({k: tuple(v) for k, v in full[FILES[1]].items()}, 2)
    torch.save({"state_dict": classifier}, folder / FILES[1])  # keys already carry 'module.'


def measure(folder: Path, size: int, threads: int) -> dict:
    """In this process (a fresh child): load, warm up, one timed forward at size x size."""

    import torch

    torch.set_num_threads(threads)
    engine = _import_engine()
    sim = importlib.import_module("promptmatte.sim")
    checkpoint = importlib.import_module("promptmatte.checkpoint")

    del engine
    start = time.perf_counter()
    weights = checkpoint.read_weights(folder / FILES[0])
    model = sim.FAMILY.load(weights, source_name=FILES[0], device="cpu", dtype=None, find_companion=lambda c: folder / FILES[1])
    load_seconds = time.perf_counter() - start

    def inputs(height, width):
        generator = torch.Generator().manual_seed(0)
        image = torch.rand(1, 3, height, width, generator=generator)
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        radius = (yy**2 + xx**2).sqrt()
        trimap = torch.where(radius < 0.45, 1.0, torch.where(radius < 0.75, 0.5, 0.0))[None, None]
        return image, trimap

    image, trimap = inputs(64, 64)
    model(image, trimap, torch.zeros(1, 4), "trimap", torch.zeros(1, dtype=torch.bool))
    image, trimap = inputs(size, size)
    restart_peak()
    before = memory_bytes("VmRSS")
    start = time.perf_counter()
    model(image, trimap, torch.zeros(1, 4), "trimap", torch.zeros(1, dtype=torch.bool))
    seconds = time.perf_counter() - start
    extra = memory_bytes("VmHWM") - before
    return {
        "size": size,
        "load_s": load_seconds,
        "forward_s": seconds,
        "peak_rss_gb": memory_bytes("VmHWM") / 1e9,
        "extra_gb": extra / 1e9,
        "estimate_gb": model.inference_memory_bytes(1, size, size) / 1e9,
        "threads": threads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="folder for the random files (kept; reused when present)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child[0]), int(args.child[1]), args.threads)))
        return
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        if not all((folder / name).is_file() for name in FILES):
            write_files(folder)
        print(f"{'size':>6} {'load s':>7} {'s/image':>8} {'peak RSS GB':>12} {'forward extra GB':>17} {'estimate GB':>12}")
        for size in args.sizes:
            row = run_child(__file__, "--threads", args.threads, "--child", folder, size)
            print(
                f"{row['size']:>6} {row['load_s']:>7.2f} {row['forward_s']:>8.1f} {row['peak_rss_gb']:>12.2f} "
                f"{row['extra_gb']:>17.2f} {row['estimate_gb']:>12.2f}"
            )


if __name__ == "__main__":
    main()
