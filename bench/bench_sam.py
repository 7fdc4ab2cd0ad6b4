"""Segment Anything (models/sam/) speed and memory at a 1024² input on this machine.

No released weights can be downloaded here, so the model is a released architecture (ViT-B by
default) with random weights of the same shapes and dtype; speed and memory do not depend on the
values. Each size runs in this process: build, one warm-up pass, then ``--runs`` timed passes of
preprocess -> image encoder -> one box prompt (multimask) -> upscaled masks.

    .venv/bin/python bench/bench_sam.py [--size vit_b|vit_l|vit_h] [--runs 2] [--threads N]

Prints: weights MB, seconds per pass (encoder and decoder apart), peak RSS, the peak's rise over
the resident weights (working memory) and the model's own ``inference_memory_bytes`` estimate.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

import torch

from _pack import import_engine as _import_engine, memory_bytes, restart_peak  # noqa: E402  (bench/ is the script's folder)

REPO = Path(__file__).resolve().parent.parent




def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="vit_b", choices=("vit_b", "vit_l", "vit_h"))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    _import_engine()
    sam = importlib.import_module("promptmatte.sam")

    generator = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in sam.SamModel(sam.OFFICIAL_CONFIGS[args.size]).state_dict().items()}
    tensors = {k: torch.randn(s, generator=generator) * 0.02 for k, s in shapes.items()}
    model = sam.build_sam(tensors)
    del tensors
    weights_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1024**2

    image = torch.rand(1, 3, 1024, 1024, generator=generator)
    box = torch.tensor([[200.0, 150.0, 800.0, 900.0]])

    def one_pass():
        with torch.inference_mode():
            t0 = time.perf_counter()
            padded, input_size = model.preprocess(image)
            embedding = model.image_encoder(padded)
            t1 = time.perf_counter()
            guidance = model.guidance_masks(embedding, input_size, (1024, 1024), boxes=box)
            t2 = time.perf_counter()
        return t1 - t0, t2 - t1, guidance

    restart_peak()  # the random state dict built above is gone; measure the passes alone
    resident = memory_bytes("VmRSS") / 1024**2
    one_pass()  # warm-up (allocator, kernels)
    encoder_s, decoder_s = [], []
    for _ in range(args.runs):
        e, d, _ = one_pass()
        encoder_s.append(e)
        decoder_s.append(d)
    peak = memory_bytes("VmHWM") / 1024**2
    estimate = model.inference_memory_bytes(1, 1024, 1024) / 1024**2
    print(
        f"SAM {args.size} (random weights), 1024² input, {torch.get_num_threads()} threads: "
        f"weights {weights_mb:.0f} MB; encoder {min(encoder_s):.2f} s, decoder+masks {min(decoder_s):.2f} s per pass "
        f"(best of {args.runs}); peak RSS {peak:.0f} MB, rise over resident weights {peak - resident:.0f} MB; "
        f"inference_memory_bytes estimate {estimate:.0f} MB"
    )


if __name__ == "__main__":
    main()
