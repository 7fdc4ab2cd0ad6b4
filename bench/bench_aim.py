"""Benchmark: AIM (full-size network, random weights) on one 1024x1024 image on this CPU.

    .venv/bin/python bench/bench_aim.py [--size 1024] [--runs 2] [--threads N] [--keep /tmp/aim_random.pth]

Writes a random checkpoint in the released layout (``{'state_dict'}``, ``resnet.*`` with
``resnet.fc`` and the ``encoderN.*`` copies, ~55 M parameters) in a child process, then in this
process loads it the way the nodes do (``read_weights`` + ``FAMILY.load``: meta device, assign,
memory map) and runs the Hybrid inference. Prints load seconds, seconds per image (each run),
peak RSS (this process, includes the weights) and the family's ``inference_memory_bytes``.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _pack import import_engine as _import_engine, memory_bytes  # noqa: E402  (bench/ is the script's folder)

REPO = Path(__file__).resolve().parent.parent
ENCODER_COPY = (("conv1.", "encoder0.0."), ("bn1.", "encoder0.1."), ("layer1.", "encoder1.0."), ("layer2.", "encoder2."),
                ("layer3.", "encoder3."), ("layer4.", "encoder4."))




def make_checkpoint(path: Path) -> None:
    import torch

    _import_engine()
    aim_model = importlib.import_module("promptmatte.aim.model")
    aim_config = importlib.import_module("promptmatte.aim.config")
    torch.manual_seed(0)
    model = aim_model.AIMModel(aim_config.AIMConfig()).eval()
    state = {}
    for key, value in model.backbone.state_dict().items():
        state["resnet." + key] = value
        old, new = next((o, n) for o, n in ENCODER_COPY if key.startswith(o))
        state[new + key[len(old):]] = value  # the same tensor: stored once by torch.save
    state["resnet.fc.weight"] = torch.randn(1000, 512) * 0.01
    state["resnet.fc.bias"] = torch.zeros(1000)
    state.update(model.semantic_decoder.state_dict())
    state.update(model.matting_decoder.state_dict())
    torch.save({"state_dict": state}, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--keep", type=Path, help="checkpoint path to reuse / keep")
    parser.add_argument("--make", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        make_checkpoint(args.make)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "aimnet_pretrained_matting.pth"
        if not path.exists():
            subprocess.run([sys.executable, __file__, "--make", str(path)], check=True)
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        _import_engine()
        read_weights = importlib.import_module("promptmatte.checkpoint").read_weights
        aim = importlib.import_module("promptmatte.aim")
        start = time.perf_counter()
        model = aim.FAMILY.load(read_weights(path), source_name=path.name, device="cpu", dtype=None, find_companion=None)
        load_seconds = time.perf_counter() - start
        parameters = sum(p.numel() for p in model.parameters())
        resident_before = memory_bytes("VmRSS")
        generator = torch.Generator().manual_seed(0)
        image = torch.rand(1, 3, args.size, args.size, generator=generator)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            alpha = model(image, None, None, "auto")
            times.append(time.perf_counter() - start)
        peak = memory_bytes("VmHWM")
        sizes = importlib.import_module("promptmatte.aim.hybrid").hybrid_sizes(args.size, args.size)
        print(f"AIM {parameters / 1e6:.1f} M parameters ({path.stat().st_size / 2**20:.0f} MiB file), input {args.size}x{args.size}, "
              f"network at {sizes.semantic} and {sizes.detail}, torch threads {torch.get_num_threads()}")
        print(f"load {load_seconds:.2f} s; per image {', '.join(f'{t:.2f}' for t in times)} s; "
              f"peak RSS {peak / 2**30:.2f} GiB (before the first image {resident_before / 2**30:.2f} GiB, "
              f"weights {parameters * 4 / 2**30:.2f} GiB); "
              f"inference_memory_bytes {model.inference_memory_bytes(1, args.size, args.size) / 2**30:.2f} GiB; "
              f"alpha range [{float(alpha.min()):.3f}, {float(alpha.max()):.3f}]")


if __name__ == "__main__":
    main()
