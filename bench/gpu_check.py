"""The pack on a CUDA GPU, every family: parity with the CPU, latency and peak VRAM, ComfyUI's model manager.

    bench/gpu_check.sh [--families ...] [--dtypes fp32 fp16 bf16] [--size 1024] [--skip-manager]

Run by ``bench/gpu_check.sh`` (one command, meant to finish within 8 minutes on one modern GPU).
On a machine without CUDA it prints one line starting "no CUDA device" and exits 0.

1. Parity: each family at its full released size (random weights, the files bench/limit.py writes
   once to ~/.cache/promptmatte/limit), a seeded 256² image and a box (SIM a trimap, AIM no prompt):
   the CPU float32 alpha is the reference, computed in the same run; the CUDA alpha in float32,
   float16 and bfloat16 must stay within the tolerances below (max-abs over the alpha in [0, 1]).
   The authors' golden fixtures on CUDA are tests/test_models_gpu.py, which the shell script runs too.
2. Latency and peak VRAM at ``--size`` (1024²): one warm-up, best of three forwards (synchronised),
   ``torch.cuda.max_memory_allocated`` above the loaded weights, next to ``inference_memory_bytes``.
3. ComfyUI's model manager (a child process per mode, ComfyUI from COMFYUI_PATH or ~/ComfyUI):
   the default mode and ``--lowvram``. Two models (MAM then LiteSDMatte) are loaded in turn through
   the pack's ``load_patcher`` and ``load_models_gpu`` as the node does, each runs once; checks: the
   VRAM held after loading a model is within 10 % of its weights (no second copy), loading the
   same file again returns the same ModelPatcher (one copy per file), and after what POST /free
   does (``unload_all_models`` then ``soft_empty_cache``) allocated VRAM is back within 64 MiB of
   where it started.

Exit status: 0 when every check passes (or no CUDA device), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import limit
from _pack import REPO, import_engine

# Max-abs alpha difference to the CPU float32 alpha, per dtype of the family's main weights.
# float32: TF32 off (the families run fp32 as fp32), so only summation order differs.
# float16 / bfloat16: 10 and 7 mantissa bits in the networks' activations; SDMatte's autoencoder
# stays float32. The README's precision table measured golden mattes moving up to 8e-3 (fp16) and
# 7e-2 (bf16); these bounds leave room for the full-size networks.
TOLERANCES = {"fp32": 1e-4, "fp16": 3e-2, "bf16": 1e-1}
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
PARITY_SIZE = 256


def _dtype(name: str):
    import torch

    return getattr(torch, DTYPES[name])


def _load(family: str, device: str, dtype_name: str):
    engine = import_engine()
    checkpoint, companions = limit.files(family, limit.DEFAULT_KEEP)
    return engine.load_matting_model(
        checkpoint, device=device, dtype=_dtype(dtype_name), find_companion=lambda c: companions.get(c.role)
    )


def parity(families, dtypes) -> list[dict]:
    import torch

    rows = []
    for family in families:
        inputs = limit.inputs(family, PARITY_SIZE)
        reference = _load(family, "cpu", "fp32")(*inputs)
        for name in dtypes:
            model = _load(family, "cuda", name)
            alpha = model(*[x.cuda() if isinstance(x, torch.Tensor) else x for x in inputs]).float().cpu()
            error = float((alpha - reference).abs().max())
            ok = bool(torch.isfinite(alpha).all()) and error <= TOLERANCES[name]
            rows.append({"check": "parity", "family": family, "dtype": name, "max_abs": error,
                         "tolerance": TOLERANCES[name], "ok": ok})
            print(f"parity  {family:12s} {name}: max-abs {error:.2e} vs CPU fp32 (tolerance {TOLERANCES[name]:.0e}) "
                  f"{'ok' if ok else 'FAILED'}", flush=True)
            del model
            torch.cuda.empty_cache()
    return rows


def latency(families, dtypes, size: int) -> list[dict]:
    import torch

    rows = []
    for family in families:
        inputs = [x.cuda() if isinstance(x, torch.Tensor) else x for x in limit.inputs(family, size)]
        for name in dtypes:
            model = _load(family, "cuda", name)
            weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()) if t.is_cuda)
            model(*inputs)  # warm-up: kernels chosen, caches filled
            seconds = []
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            for _ in range(3):
                limit.clear_caches(model)
                start = time.perf_counter()
                model(*inputs)
                torch.cuda.synchronize()
                seconds.append(time.perf_counter() - start)
            peak = torch.cuda.max_memory_allocated() - before
            estimate = model.inference_memory_bytes(1, size, size)
            rows.append({"check": "latency", "family": family, "dtype": name, "size": size, "seconds": min(seconds),
                         "peak_vram_bytes": peak, "weights_bytes": weights, "estimate_bytes": estimate, "ok": True})
            print(f"latency {family:12s} {name} {size}²: {min(seconds):.3f} s, peak VRAM {peak / 2**20:.0f} MiB above "
                  f"{weights / 2**20:.0f} MiB of weights (estimate {estimate / 2**20:.0f} MiB)", flush=True)
            del model
            torch.cuda.empty_cache()
    return rows


def manager(lowvram: bool) -> dict:
    """In a child process started with ComfyUI's arguments: two models in turn through ComfyUI's model manager."""
    comfy = Path(os.environ.get("COMFYUI_PATH", Path.home() / "ComfyUI"))
    args = [sys.executable, __file__, "--manager-child"] + (["--lowvram"] if lowvram else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(comfy), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=comfy)
    mode = "--lowvram" if lowvram else "default"
    if done.returncode != 0:
        print(f"manager {mode}: FAILED\n{done.stderr[-3000:]}", flush=True)
        return {"check": "manager", "mode": mode, "ok": False}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"manager {mode}: " + ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("check", "mode")), flush=True)
    return row


def _manager_child(lowvram: bool) -> None:
    """ComfyUI's model management as the server runs it (its argument parser reads sys.argv)."""
    import importlib.util

    sys.argv = ["main.py"] + (["--lowvram"] if lowvram else [])
    import torch

    import comfy.model_management as mm

    spec = importlib.util.spec_from_file_location("PromptMatte", REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["PromptMatte"] = pack
    spec.loader.exec_module(pack)
    patcher_module = importlib.import_module("PromptMatte.nodes.patcher")

    start = torch.cuda.memory_allocated()
    row = {"check": "manager", "mode": "--lowvram" if lowvram else "default", "ok": True}
    for family in ("mam", "litesdmatte"):
        checkpoint, companions = limit.files(family, limit.DEFAULT_KEEP)
        find = lambda c: companions.get(c.role)  # noqa: E731
        patcher = patcher_module.load_patcher(str(checkpoint), "fp16", find)
        again = patcher_module.load_patcher(str(checkpoint), "fp16", find)
        net = patcher_module.network(patcher)
        weights = sum(t.numel() * t.element_size() for t in net.state_dict().values())
        before = torch.cuda.memory_allocated()
        patcher_module.make_resident(patcher, net.inference_memory_bytes(1, 512, 512))
        held = torch.cuda.memory_allocated() - before
        alpha = net(*limit.inputs(family, 512))
        one_copy = again is patcher and (held <= 1.1 * weights)
        row[f"{family}_weights_MiB"] = round(weights / 2**20)
        row[f"{family}_vram_held_MiB"] = round(held / 2**20)
        row[f"{family}_finite"] = bool(torch.isfinite(alpha).all())
        row["ok"] = row["ok"] and one_copy and row[f"{family}_finite"]
    mm.unload_all_models()
    mm.soft_empty_cache()
    after_free = torch.cuda.memory_allocated() - start
    row["after_free_MiB"] = round(after_free / 2**20, 1)
    row["ok"] = row["ok"] and after_free <= 64 * 2**20
    print(json.dumps(row))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=list(limit.FAMILIES), choices=limit.FAMILIES)
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--size", type=int, default=1024, help="latency and VRAM size")
    parser.add_argument("--skip-manager", action="store_true", help="leave out ComfyUI's model manager")
    parser.add_argument("--json", type=Path, help="also write every row to this JSON file")
    parser.add_argument("--manager-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lowvram", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print(f"gpu_check: {sys.executable} cannot import torch: set PROMPTMATTE_PYTHON to a virtual environment's "
              "python (scripts/test makes .venv)", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print(f"no CUDA device: torch {torch.__version__} sees no GPU on this machine, nothing to check "
              "(run bench/gpu_check.sh where one is)")
        return 0
    if args.manager_child:
        _manager_child(args.lowvram)
        return 0
    print(f"GPU: {torch.cuda.get_device_name()}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.1f} GiB; "
          f"torch {torch.__version__}", flush=True)
    for family in args.families:
        limit.ensure_files(family, limit.DEFAULT_KEEP)
    rows = parity(args.families, args.dtypes) + latency(args.families, args.dtypes, args.size)
    if not args.skip_manager:
        rows += [manager(lowvram=False), manager(lowvram=True)]
    # The authors' golden fixtures on CUDA (float32 within 2e-5, peak VRAM against the reserve).
    # (bin/pytest, not ``python -m pytest``: the repository's nodes/ would shadow ComfyUI's)
    tests = subprocess.run([str(Path(sys.executable).parent / "pytest"), "tests/test_models_gpu.py", "-q", "-p", "no:cacheprovider"],
                           cwd=REPO, env=dict(os.environ, COMFYUI_PATH=os.environ.get("COMFYUI_PATH", str(Path.home() / "ComfyUI"))))
    rows.append({"check": "tests/test_models_gpu.py", "ok": tests.returncode == 0})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    failed = [r for r in rows if not r["ok"]]
    print(f"{len(rows) - len(failed)} of {len(rows)} checks passed" + (": FAILED " + ", ".join(
        f"{r['check']} {r.get('family', r.get('mode', ''))} {r.get('dtype', '')}".strip() for r in failed) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
