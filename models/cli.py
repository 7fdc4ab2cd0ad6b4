"""Command line for weight processing: ``python -m <pack>.models {inspect,convert,init-from-sd2}``."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from .checkpoint import read_weights
from .errors import CheckpointError
from .loader import source_name
from .registry import recognise
from .sdmatte.architecture import infer_architecture
from .sdmatte.conversion import convert_checkpoint, init_from_sd2

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m <pack>.models", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="print the family (and SDMatte's architecture) read from a checkpoint")
    inspect.add_argument("source")
    convert = commands.add_parser("convert", help="released .pth (or any supported file) -> verified .safetensors")
    convert.add_argument("source")
    convert.add_argument("destination")
    convert.add_argument("--dtype", choices=sorted(DTYPES), help="store in this precision (default: as stored)")
    init = commands.add_parser("init-from-sd2", help="Stable Diffusion 2 weights -> SDMatte training initialisation")
    init.add_argument("source", help="SD2 folder (unet/, vae/, text_encoder/) or flat prefixed file")
    init.add_argument("destination")
    init.add_argument("--dtype", choices=sorted(DTYPES))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    dtype = DTYPES.get(getattr(args, "dtype", None) or "")
    try:
        if args.command == "inspect":
            weights = read_weights(args.source)
            shapes = {k: tuple(v.shape) for k, v in weights.tensors.items()}
            family = recognise(shapes, source_name(args.source))
            summary = {"family": family.name, "title": family.title, "prompt_kinds": list(family.prompt_kinds)}
            if family.name == "sdmatte":
                summary.update(infer_architecture(shapes, weights.text_heads).summary())
            summary["companions"] = [c.file_names[0] for c in family.companions]
            print(json.dumps(summary, indent=1))
        elif args.command == "convert":
            metadata = convert_checkpoint(args.source, args.destination, dtype)
            print(f"wrote {args.destination} ({metadata['family']}, {metadata['dtype']}); round trip verified")
        else:
            metadata = init_from_sd2(args.source, args.destination, dtype)
            print(f"wrote {args.destination} ({metadata['family']} training initialisation); round trip verified")
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
