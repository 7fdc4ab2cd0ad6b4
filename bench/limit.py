"""Every family against this machine's limit: the fraction of the CPU's own arithmetic rate a forward reaches.

    .venv/bin/python bench/limit.py [--families sdmatte litesdmatte mam semat sim aim]
                                    [--sizes 512 1024 2048] [--repeats 1] [--keep DIR] [--json]

For each family (its full released size, random weights written once by the family's bench
script's writer into DIR, default ~/.cache/promptmatte/limit) and each size, a fresh child process:

- loads the model through ``load_matting_model`` (as the node does) and reads every weight once
  (memory-mapped pages in);
- measures the machine's float32 rates: a 4096² matmul and 3×3 convolutions (256 and 64 channels),
  best of a few, before and after the timed forwards (the best is kept: on a shared machine the
  best is the closest to what the cores can do);
- times a forward on a seeded image, every encoding cache emptied, under ``FlopCounterMode``
  (multiply-accumulates = counted FLOPs / 2; the fused CPU attention and oneDNN's fused
  convolutions, which torch does not count, are counted as their products) and ``torch.profiler``
  (the top five operators by self time, the time shares by kind of work), then ``--repeats`` - 1
  more plain ones (best kept), then one forward on the same image with another prompt (the
  interactive re-prompt; caches kept; its multiply-accumulates counted, ``reprompt_macs``);
- reads the peak resident set (VmHWM) of the timed forwards.

``fraction`` is the forward's MACs per second over the measured matmul rate. Sizes 2048 run only
for the families that work at the input size (SDMatte's pipeline resizes to its working size).
``--json`` prints one JSON object per family and size; otherwise a Markdown table follows the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from _pack import import_engine as _import_engine, memory_bytes, restart_peak, run_child  # noqa: E402  (bench/ is the script's folder)

FAMILIES = ("sdmatte", "litesdmatte", "mam", "semat", "sim", "aim")
INPUT_SIZE_FAMILIES = ("mam", "semat", "sim", "aim")
DEFAULT_KEEP = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "promptmatte" / "limit"


# ---------------------------------------------------------------- random full-size files, per family

def files(family: str, folder: Path) -> tuple[Path, dict]:
    """(checkpoint, companion role -> path) of ``family``'s random full-size files in ``folder``."""
    folder = folder / family
    if family == "sdmatte":
        return folder / "sdmatte_random.safetensors", {}
    if family == "litesdmatte":
        return folder / "litesdmatte_random.safetensors", {}
    if family == "mam":
        return folder / "mam_vitb.pth", {"sam": folder / "sam_vit_b.pth"}
    if family == "semat":
        return folder / "SEMat_SAM.pth", {}
    if family == "sim":
        return folder / "ckpt_best.pth", {"classifier": folder / "classifier_resnet50_best.pth.tar"}
    return folder / "aimnet_pretrained_matting.pth", {}


def write_files(family: str, folder: Path) -> None:
    """The family's bench script writes its random full-size files (run in a child: nothing stays here)."""
    checkpoint, _ = files(family, folder)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    if family in ("sdmatte", "litesdmatte"):
        import bench_engine

        bench_engine.write_random_checkpoint(checkpoint, lite=family == "litesdmatte")
    elif family == "mam":
        import bench_mam

        bench_mam.write_random_files(checkpoint.parent, "vit_b")
    elif family == "semat":
        import bench_semat

        bench_semat.write_file(checkpoint.parent)
    elif family == "sim":
        import bench_sim

        bench_sim.write_files(checkpoint.parent)
    else:
        import bench_aim

        bench_aim.make_checkpoint(checkpoint)


# ---------------------------------------------------------------- the machine's rates

def matmul_rate(repeats: int = 3, cpu: bool = False) -> float:
    """float32 4096² matmul, multiply-accumulates per second (best of ``repeats``); ``cpu``: per second
    of this process's CPU time divided by its threads (what the cores do while they are ours)."""
    import torch

    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    return 4096**3 / _best_seconds(lambda: a @ b, repeats, cpu)


def conv_rate(repeats: int = 5, channels: int = 256, side: int = 128) -> float:
    """float32 3×3 convolution, ``channels`` -> ``channels`` on a ``side``² map: MACs per second (best of
    ``repeats``). 256 channels: the rate wide layers reach; 64: what TAESD's narrow layers can reach."""
    import torch

    x, w = torch.randn(1, channels, side, side), torch.randn(channels, channels, 3, 3)
    conv = torch.nn.functional.conv2d
    with torch.inference_mode():
        conv(x, w, padding=1)
        return side * side * channels * channels * 9 / _best_seconds(lambda: conv(x, w, padding=1), repeats)


def _best_seconds(call, repeats: int, cpu: bool = False) -> float:
    """Best wall time of ``call``; ``cpu``: best CPU time of this process divided by torch's threads."""
    import torch

    clock = time.process_time if cpu else time.perf_counter
    scale = torch.get_num_threads() if cpu else 1
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        call()
        best = min(best, (clock() - start) / scale)
    return best


# ---------------------------------------------------------------- counting

def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """Fused CPU attention: scores (L × S × E) and their product with the values (L × S × Ev), per batch and head."""
    *batch, length, depth = query_shape
    keys, value_depth = key_shape[-2], value_shape[-1]
    heads = 1
    for n in batch:
        heads *= n
    return 2 * heads * length * keys * (depth + value_depth)


def _fused_conv_flops(*args, out_shape=None, **kwargs) -> int:
    """oneDNN convolution with a fused post-op (models/sdmatte/tiny_fused.py): the convolution's products.
    ``.binary`` has the residual as its second argument, then the weight."""
    weight = args[2] if len(args) > 10 else args[1]
    per_output = 1
    for n in weight[1:]:
        per_output *= n
    outputs = 1
    for n in out_shape:
        outputs *= n
    return 2 * outputs * per_output


def counter():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}
    if hasattr(torch.ops, "mkldnn") and hasattr(torch.ops.mkldnn, "_convolution_pointwise"):
        mapping[torch.ops.mkldnn._convolution_pointwise] = _fused_conv_flops
    return FlopCounterMode(display=False, custom_mapping=mapping)


def time_shares(averages) -> dict:
    """Self time of the profiled forward by kind of work, as fractions: narrow convolutions (at most 64
    input channels), other convolutions, matrix products, attention, everything else (element-wise
    passes, normalisations, copies: memory-bound)."""
    kinds = {"conv <= 64 ch": 0.0, "conv": 0.0, "matmul": 0.0, "attention": 0.0, "other": 0.0}
    for event in averages:
        name, shapes = event.key, event.input_shapes or []
        if "convolution" in name and "backward" not in name and name not in ("aten::_convolution",):
            if name in ("aten::convolution", "aten::conv2d"):
                continue  # parents of the kernel call: self time ~0, counted below
            narrow = bool(shapes and len(shapes[0]) == 4 and shapes[0][1] <= 64)
            kinds["conv <= 64 ch" if narrow else "conv"] += event.self_cpu_time_total
        elif name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear"):
            kinds["matmul"] += event.self_cpu_time_total
        elif "scaled_dot_product" in name or "softmax" in name:
            kinds["attention"] += event.self_cpu_time_total
        else:
            kinds["other"] += event.self_cpu_time_total
    total = sum(kinds.values()) or 1.0
    return {kind: seconds / total for kind, seconds in kinds.items()}


# ---------------------------------------------------------------- one family at one size (child process)

def inputs(family: str, size: int, second: bool = False):
    """(image, prompt_map, coords, kind, transparent): a seeded image; a box over its middle (``second``: a
    smaller box to the upper left, the re-prompt); SIM a ring trimap; AIM no prompt."""
    import torch

    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    transparent = torch.tensor([False])
    if family == "aim":
        return image, torch.ones(1, 1, size, size), torch.zeros(1, 4), "auto", transparent
    if family == "sim":
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
        radius = (yy**2 + xx**2).sqrt() * (1.25 if second else 1.0)
        trimap = torch.where(radius < 0.45, 1.0, torch.where(radius < 0.75, 0.5, 0.0))[None, None]
        return image, trimap, torch.zeros(1, 4), "trimap", transparent
    box = (0.125, 0.125, 0.5, 0.5) if second else (0.25, 0.25, 0.75, 0.75)
    prompt = torch.zeros(1, 1, size, size)
    x1, y1, x2, y2 = (round(v * size) for v in box)
    prompt[..., y1:y2, x1:x2] = 1
    return image, prompt, torch.tensor([box]), "box", transparent


def clear_caches(model) -> None:
    """Empty every encoding cache a family keeps (SDMatte's latents, SAM's image embeddings)."""
    for name in ("latent_cache", "embedding_cache"):
        cache = getattr(model, name, None)
        if cache is not None:
            cache.clear()


def measure(family: str, size: int, folder: Path, repeats: int) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    engine = _import_engine()
    checkpoint, companions = files(family, folder)
    start = time.perf_counter()
    model = engine.load_matting_model(checkpoint, find_companion=lambda companion: companions.get(companion.role))
    load_seconds = time.perf_counter() - start
    assert model.family == family, (model.family, family)
    first = inputs(family, size)

    with torch.inference_mode():  # page the memory-mapped weights in: the timed passes do not read the disk
        touched = sum(float(t.float().sum()) for t in model.state_dict().values() if t.is_floating_point())
    rates = [(matmul_rate(), conv_rate(), conv_rate(channels=64, side=256), matmul_rate(cpu=True))]

    # The counted and profiled forward is also timed (their overhead is per operator call, small next
    # to a pass of seconds): on a loaded machine a separate warm-up pass costs more than it tells.
    clear_caches(model)
    restart_peak()
    start, start_cpu = time.perf_counter(), time.process_time()
    with counter() as counted, profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiled:
        alpha = model(*first)
    seconds = [time.perf_counter() - start]
    cpu_seconds = [(time.process_time() - start_cpu) / torch.get_num_threads()]
    peak = memory_bytes("VmHWM")
    macs = counted.get_total_flops() / 2
    by_op = {str(op): flops / 2 for op, flops in counted.get_flop_counts().get("Global", {}).items()}
    events = sorted(profiled.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    profiled_total = sum(e.self_cpu_time_total for e in events) / 1e6
    top = [[e.key, e.self_cpu_time_total / 1e6] for e in events[:5]]
    shares = time_shares(profiled.key_averages(group_by_input_shape=True))
    del profiled, events
    for _ in range(repeats - 1):
        clear_caches(model)
        restart_peak()
        start, start_cpu = time.perf_counter(), time.process_time()
        alpha = model(*first)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append((time.process_time() - start_cpu) / torch.get_num_threads())
        peak = max(peak, memory_bytes("VmHWM"))
    assert alpha.shape == (1, 1, size, size) and bool(torch.isfinite(alpha).all())
    # Interactive use: the same image, another prompt (encoding caches kept from the pass above).
    # Counted as the first pass is: what the caches spare is what is not counted.
    start, start_cpu = time.perf_counter(), time.process_time()
    with counter() as recounted:
        model(*inputs(family, size, second=True))
    reprompt_seconds = time.perf_counter() - start
    reprompt_cpu_seconds = (time.process_time() - start_cpu) / torch.get_num_threads()
    rates.append((matmul_rate(), conv_rate(), conv_rate(channels=64, side=256), matmul_rate(cpu=True)))
    machine = max(r[0] for r in rates)
    machine_cpu = max(r[3] for r in rates)
    conv = max(r[1] for r in rates)
    conv64 = max(r[2] for r in rates)
    best = min(seconds)
    return {
        "family": family, "size": size, "macs": macs, "seconds": best, "all_seconds": seconds,
        "machine_macs_per_s": machine, "machine_conv_macs_per_s": conv, "machine_conv64_macs_per_s": conv64,
        "time_shares": shares,
        "achieved_macs_per_s": macs / best, "fraction": macs / best / machine,
        # Per CPU-second (CPU time / threads) on both sides: what the forward does with the cores while
        # it has them, robust when other processes share the machine (wall-clock fraction is not).
        "cpu_seconds": min(cpu_seconds), "machine_macs_per_cpu_s": machine_cpu,
        "fraction_cpu": macs / min(cpu_seconds) / machine_cpu,
        "peak_rss_bytes": peak, "reprompt_seconds": reprompt_seconds,
        "reprompt_cpu_seconds": reprompt_cpu_seconds, "reprompt_macs": recounted.get_total_flops() / 2, "load_seconds": load_seconds,
        "profiled_seconds": profiled_total, "top_ops": top, "touched": touched,
        "macs_by_op": dict(sorted(by_op.items(), key=lambda kv: -kv[1])),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }


# ---------------------------------------------------------------- the parent

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=1, help="timed forwards per family and size (best kept)")
    parser.add_argument("--keep", type=Path, default=DEFAULT_KEEP, help="folder of the random files (written once, reused)")
    parser.add_argument("--json", action="store_true", help="one JSON object per family and size, nothing else")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--write", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write_files(args.write, args.keep)
        return
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.keep, args.repeats)))
        return
    rows = []
    for family in args.families:
        ensure_files(family, args.keep)
        for size in args.sizes:
            if size > 1024 and family not in INPUT_SIZE_FAMILIES:
                continue
            row = run_child(__file__, "--keep", args.keep, "--repeats", args.repeats, "--child", family, size)
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(_line(row), flush=True)
    if not args.json:
        print()
        print(table(rows))


def ensure_files(family: str, folder: Path) -> None:
    """Write ``family``'s random full-size files into ``folder`` unless they are there (in a child process)."""
    import subprocess

    checkpoint, companions = files(family, folder)
    if all(p.is_file() for p in (checkpoint, *companions.values())):
        return
    print(f"writing random full-size {family} files to {checkpoint.parent}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, __file__, "--keep", str(folder), "--write", family], check=True)


def _line(row: dict) -> str:
    top = "; ".join(f"{name} {seconds:.2f} s" for name, seconds in row["top_ops"])
    return (
        f"{row['family']} {row['size']}: {row['macs'] / 1e9:.0f} GMAC in {row['seconds']:.2f} s = "
        f"{row['achieved_macs_per_s'] / 1e9:.1f} GMAC/s, {row['fraction']:.2f} of matmul "
        f"{row['machine_macs_per_s'] / 1e9:.1f} (conv {row['machine_conv_macs_per_s'] / 1e9:.1f}) GMAC/s; "
        f"re-prompt {row['reprompt_seconds']:.2f} s; peak RSS {row['peak_rss_bytes'] / 2**30:.2f} GiB; top: {top}; "
        f"time shares: " + ", ".join(f"{kind} {share:.2f}" for kind, share in row["time_shares"].items())
    )


def table(rows: list[dict]) -> str:
    """The README's limit table (its last column, why a family stays below 0.70, is written by hand
    from these numbers)."""
    lines = [
        "| family | size | GMAC | s | **fraction** of matmul GMAC/s | per CPU-second | re-prompt: work left (s) "
        "| peak RSS GiB | time: conv ≤64 ch / other conv / matmul / attention / other | top operators (self s) "
        "| below 0.70 because |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        top = ", ".join(f"`{name.removeprefix('aten::')}` {seconds:.1f}" for name, seconds in r["top_ops"][:3])
        shares = " / ".join(f"{share:.2f}" for share in r["time_shares"].values())
        reprompt = r.get("reprompt_macs")
        left = "—" if reprompt is None else f"{reprompt / 1e9:.0f} GMAC = {reprompt / r['macs']:.2f}×"
        lines.append(
            f"| {r['family']} | {r['size']}² | {r['macs'] / 1e9:.0f} | {r['seconds']:.1f} | "
            f"**{r['fraction']:.2f}** of {r['machine_macs_per_s'] / 1e9:.0f} | {r['fraction_cpu']:.2f} | "
            f"{left} ({r['reprompt_seconds']:.1f} s) | {r['peak_rss_bytes'] / 2**30:.2f} | {shares} | {top} |  |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
