"""Matting Anything at its released size: latency and peak memory of one forward on this machine.

    python bench/bench_mam.py [--size 1024] [--threads N] [--sam vit_b|vit_l|vit_h] [--kind box|point]

Random weights in the released layouts (SAM ViT-B ``sam_vit_b_01ec64.pth``, the M2M module of
``mam_vitb.pth`` as ``[2, 3, 3, 2]`` with spectral-norm keys), shapes from
tests/golden/mam/released_shapes.json; files written to a temporary folder and loaded through the
family's ``load`` (as the node does), then one warm-up and timed forwards on a seeded image.
Prints the load time, latency, the peak resident memory (VmHWM) above the loaded model, the
model's own estimate (``inference_memory_bytes``) and the whole process's peak.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from _pack import import_engine as _import_engine, memory_bytes, restart_peak  # noqa: E402  (bench/ is the script's folder)

REPO = Path(__file__).resolve().parent.parent




def _random_tensor(key: str, shape: list[int], dtype: str, generator: torch.Generator) -> torch.Tensor:
    if dtype == "int64":
        return torch.zeros(shape, dtype=torch.int64)
    if key.endswith(("weight_u", "weight_v")):
        t = torch.randn(shape, generator=generator)
        return t / t.norm()
    if key.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=generator)
    fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) >= 2 else 1
    scale = fan_in**-0.5 if len(shape) >= 2 else 0.02
    base = 1.0 if (len(shape) == 1 and key.endswith(".weight")) else 0.0
    return base + scale * torch.randn(shape, generator=generator)


def write_random_files(folder: Path, sam_size: str) -> tuple[Path, Path]:
    released = json.loads((REPO / "tests" / "golden" / "mam" / "released_shapes.json").read_text())
    generator = torch.Generator().manual_seed(0)
    sam = {k: _random_tensor(k, shape, dtype, generator) for k, (shape, dtype) in released[f"sam_{sam_size}"].items()}
    m2m = {k: _random_tensor(k, shape, dtype, generator) for k, (shape, dtype) in released["mam_vitb_state_dict"].items()}
    sam_path, m2m_path = folder / f"sam_{sam_size}.pth", folder / "mam_vitb.pth"
    torch.save(sam, sam_path)
    torch.save({"iter": 20000, "state_dict": m2m}, m2m_path)
    return sam_path, m2m_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="input side (square image)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--sam", default="vit_b", choices=("vit_b", "vit_l", "vit_h"))
    parser.add_argument("--kind", default="box", choices=("box", "point"))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--write-files", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_files:
        write_random_files(args.write_files, args.sam)
        return
    torch.set_num_threads(args.threads)
    engine = _import_engine()
    mam = importlib.import_module("promptmatte.mam")
    checkpoint = importlib.import_module("promptmatte.checkpoint")

    with tempfile.TemporaryDirectory() as folder:
        # Written by a child process, so that making the random tensors leaves nothing in this one.
        subprocess.run([sys.executable, __file__, "--write-files", folder, "--sam", args.sam], check=True)
        sam_path, m2m_path = Path(folder) / f"sam_{args.sam}.pth", Path(folder) / "mam_vitb.pth"
        before_load = memory_bytes("VmRSS")
        start = time.perf_counter()
        model = mam.FAMILY.load(checkpoint.read_weights(m2m_path), source_name=m2m_path.name, find_companion=lambda c: sam_path)
        load_seconds = time.perf_counter() - start
        loaded_resident = memory_bytes("VmRSS") - before_load  # memory-mapped weights: pages come when first used
        weights_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())

        generator = torch.Generator().manual_seed(0)
        image = torch.rand(1, 3, args.size, args.size, generator=generator)
        prompt_map = torch.zeros(1, 1, args.size, args.size)
        coords = torch.tensor([[0.2, 0.15, 0.8, 0.9]]) if args.kind == "box" else torch.tensor([[0.5, 0.5] + [0.0] * 18])
        model(image, prompt_map, coords, args.kind)  # warm-up: allocator arenas, first-call costs
        latencies, peaks, process_peaks = [], [], []
        for _ in range(args.repeats):
            restart_peak()
            resident = memory_bytes("VmRSS")
            start = time.perf_counter()
            alpha = model(image, prompt_map, coords, args.kind)
            latencies.append(time.perf_counter() - start)
            peaks.append(memory_bytes("VmHWM") - resident)
            process_peaks.append(memory_bytes("VmHWM"))
        assert alpha.shape == (1, 1, args.size, args.size)
    print(f"MAM ({args.sam} SAM + M2M [2, 3, 3, 2]) at {args.size}x{args.size}, {args.kind} prompt, {args.threads} threads")
    print(f"  torch {torch.__version__}; engine {engine.__name__}")
    print(f"  load: {load_seconds:.1f} s; weights {weights_bytes / 2**20:.0f} MiB (resident right after load +{loaded_resident / 2**20:.0f} MiB)")
    print(f"  latency: {', '.join(f'{s:.2f}' for s in latencies)} s (best {min(latencies):.2f} s)")
    print(f"  working memory (VmHWM above the loaded model): {min(peaks) / 2**20:.0f} MiB; "
          f"estimate inference_memory_bytes: {model.inference_memory_bytes(1, args.size, args.size) / 2**20:.0f} MiB")
    print(f"  process peak RSS during a forward: {max(process_peaks) / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
