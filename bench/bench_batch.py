"""Benchmark: the batch command's throughput locally and on Ray with 1 and 2 actors, in one run.

    .venv/bin/python bench/bench_batch.py [--images 12] [--size 512] [--model FILE]

Default model: full-size AIM with random weights (bench_aim.py's checkpoint, ~55 M parameters;
AIM works at the input size, so ``--size`` sets the work per image). Each configuration is one
fresh ``python -m <pack>.batch`` process over the same images (automatic prompt, alphas only) into
its own folder:

- local, torch's default threads (all cores) and 1 thread;
- ``--ray`` (a local Ray started by the command) with 1 actor and with 2 actors, 1 CPU each.

Prints, side by side: the wall time of the command (Python start, imports, Ray start, model loads,
all images), images per second over that wall time, the time to the first result (start-up + one
image), the steady rate after it (the command's own summary), and the peak resident memory of each
process holding a model (the local process, or each Ray actor), sampled every 0.2 s. It checks that
every configuration wrote the same files as the 1-thread local run (the Ray actors compute with 1
thread each).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACK = "PromptMatte"


def make_images(folder: Path, count: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        cy, cx, r = rng.uniform(0.3, 0.7) * size, rng.uniform(0.3, 0.7) * size, rng.uniform(0.15, 0.3) * size
        subject = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r)[..., None]
        pixels = np.where(subject, rng.integers(0, 256, 3), rng.integers(0, 256, 3)) + rng.normal(0, 12, (size, size, 3))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"img{i:03d}.png")


def run(holder: Path, args: list[str]) -> dict:
    """Run the command, sampling the resident memory of the processes that hold a model."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", f"{PACK}.batch", *args], cwd=holder,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict = {}
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for p in tree:
            try:
                title = " ".join(p.cmdline()[:1])
                if p.pid == proc.pid or title.startswith("ray::MapWorker"):
                    peaks[p.pid] = max(peaks.get(p.pid, 0), p.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        time.sleep(0.2)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{err[-3000:]}")
    line = next(l for l in err.splitlines() if l.startswith("done: "))
    first = float(re.search(r"first result after ([\d.]+) s", line).group(1))
    steady = re.search(r"then ([\d.]+) images/s", line)
    actors = {pid: rss for pid, rss in peaks.items() if pid != proc.pid}
    return {"wall": wall, "first": first, "steady": float(steady.group(1)) if steady else float("nan"),
            "rss": sorted(actors.values()) if actors else [peaks.get(proc.pid, 0)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--model", type=Path, help="checkpoint of any family (default: full-size AIM, random weights)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        holder = tmp / "holder"
        holder.mkdir()
        (holder / PACK).symlink_to(REPO, target_is_directory=True)
        model = args.model
        if model is None:
            model = tmp / "aimnet_pretrained_matting.pth"
            subprocess.run([sys.executable, str(REPO / "bench" / "bench_aim.py"), "--make", str(model)], check=True)
        make_images(tmp / "images", args.images, args.size)
        base = ["--model", str(model), "--input", str(tmp / "images"), "--quiet"]
        configs = [
            ("local, all cores", []),
            ("local, 1 thread", ["--threads", "1"]),
            ("Ray, 1 actor x 1 CPU", ["--ray", "--actors", "1"]),
            ("Ray, 2 actors x 1 CPU", ["--ray", "--actors", "2"]),
        ]
        results = {}
        for name, extra in configs:
            out = tmp / f"out{len(results)}"
            results[name] = run(holder, [*base, "--out", str(out), *extra])
            results[name]["files"] = {p.name: p.read_bytes() for p in out.glob("*.png")}
            print(f"  {name}: {results[name]['wall']:.1f} s", file=sys.stderr, flush=True)
        reference = results["local, 1 thread"]["files"]
        print(f"{args.images} images of {args.size}x{args.size}, {model.name}, this machine "
              f"({__import__('os').cpu_count()} cores):")
        print("| configuration | wall s | images/s (wall) | first result s | steady images/s | peak RSS per model process GB | same files as local 1 thread |")
        print("|---|---|---|---|---|---|---|")
        for name, r in results.items():
            same = "yes" if r["files"] == reference else ("yes" if name == "local, 1 thread" else "no")
            rss = ", ".join(f"{v / 1e9:.2f}" for v in r["rss"])
            print(f"| {name} | {r['wall']:.1f} | {args.images / r['wall']:.2f} | {r['first']:.1f} | {r['steady']:.2f} | "
                  f"{rss} | {same} |")


if __name__ == "__main__":
    main()
