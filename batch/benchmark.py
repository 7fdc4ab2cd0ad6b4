"""Run a matting checkpoint over a test set and measure it as the authors' test scripts do.

    python -m <pack>.batch.benchmark --model FILE --images DIR --gt DIR \\
        --prompt {box,mask,point,trimap,auto} [--out DIR] [--resolution 1024] [--seed 0]
        [--trimap-dir DIR] [--transparent] [--device cpu|cuda] [--csv FILE]
        [--ray [ADDRESS] [--actors N] [--cpus-per-actor N] [--gpus-per-actor N]] [--threads N]

Every ground truth in ``--gt`` is one image of the set; its image is the file in ``--images`` with
the same name stem. Each image is stretched and prompted as :mod:`..matting.benchmark` says (the
authors' test transforms), the model's alpha is resized back to the ground truth's size and written
as ``OUT/<stem>.png`` (through a temporary name, so an interrupted run never leaves half a file),
and all predictions are measured (:mod:`..matting.evaluate`: MSE, MAD, SAD, Grad, Conn over the
whole image, as their ``evaluation.py``); the table is printed and written to ``OUT/metrics.csv``.

Resuming: predictions already in OUT (readable PNGs of the right size) are kept and skipped, so
after an interruption the same command carries on. OUT records the settings it was made with
(``benchmark.json``); resuming with other settings is refused rather than mixing predictions.

The engine (``models.load_matting_model``) is imported only when something is left to predict.
Predictions run on the batch command's machinery (``batch.runner``): here, or with ``--ray`` on Ray
Data with one loaded model per actor; the files are the same either way (with the same ``--threads``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..matting.benchmark import (
    PROMPTS,
    SETTINGS_FILE,
    BenchmarkError,
    derive_prompt,
    existing_prediction,
    prediction_levels,
    read_rgb,
    stretch_image,
    working_alpha,
)
from ..matting.evaluate import evaluate_files, images_by_stem, mean_line, read_grey, write_csv
from ..matting.metrics import MetricsError


def _settings(args) -> dict:
    model = Path(args.model).resolve()
    return {
        "model": str(model),
        "model_bytes": model.stat().st_size if model.is_file() else None,
        "prompt": args.prompt,
        "resolution": args.resolution,
        "seed": args.seed,
        "transparent": bool(args.transparent),
        "trimap_dir": str(Path(args.trimap_dir).resolve()) if args.trimap_dir else None,
        "precision": args.precision,
    }


def _check_settings(out: Path, settings: dict) -> None:
    path = out / SETTINGS_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None
        if old is not None and old != settings:
            diff = ", ".join(f"{k}: {old.get(k)!r} -> {v!r}" for k, v in settings.items() if old.get(k) != v)
            raise BenchmarkError(
                f"{out} holds predictions made with other settings ({diff}); give another --out folder, "
                "or delete the old predictions to start again"
            )
    path.write_text(json.dumps(settings, indent=1) + "\n")


# ----------------------------------------------------------------------------- the run


def _pair_images(images_dir, gt_dir, trimap_dir):
    gts = images_by_stem(gt_dir, "ground-truth")
    if not gts:
        raise BenchmarkError(f"the ground-truth folder {gt_dir} holds no image files")
    images = images_by_stem(images_dir, "image")
    missing = [s for s in gts if s not in images]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise BenchmarkError(
            f"{len(missing)} of {len(gts)} ground truths have no image in {images_dir} (matched by file name "
            f"without extension): {shown}"
        )
    trimaps = images_by_stem(trimap_dir, "trimap") if trimap_dir else {}
    if trimap_dir:
        no_trimap = [s for s in gts if s not in trimaps]
        if no_trimap:
            raise BenchmarkError(f"{len(no_trimap)} ground truths have no trimap in {trimap_dir}: {', '.join(no_trimap[:5])}")
    return [(s, images[s], gts[s], trimaps.get(s)) for s in sorted(gts)]


def _load_model(path: str, device: str, precision: str):
    import torch

    from ..models import load_matting_model

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    try:
        return load_matting_model(path, device=device, dtype=dtype)
    except ValueError as e:  # CheckpointError: says what the file looks like and what to use instead
        raise BenchmarkError(f"cannot load {path}: {e}") from None


def run(args) -> int:
    if getattr(args, "ray", None) is not None:
        from .runner import import_ray

        import_ray()  # a missing Ray stops the run before anything is read
    out = Path(args.out)
    items = _pair_images(args.images, args.gt, args.trimap_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, _settings(args))

    todo, problems = [], []
    for stem, image_path, gt_path, trimap_path in items:
        gt = read_grey(gt_path)
        if existing_prediction(out / f"{stem}.png", gt.shape):
            continue
        try:  # derive every prompt before the model loads: a set that cannot run stops at once
            derive_prompt(args.prompt, working_alpha(gt, args.resolution), args.seed,
                          read_grey(trimap_path) if trimap_path is not None else None)
        except MetricsError as e:
            problems.append(f"{stem}: {e}")
        todo.append((stem, image_path, gt_path, trimap_path))
    if problems:
        raise BenchmarkError(
            f"{len(problems)} image(s) cannot be prompted with --prompt {args.prompt}:\n  "
            + "\n  ".join(problems[:10]) + ("\n  ..." if len(problems) > 10 else "")
            + "\nchoose another prompt kind for this set, or remove these images from it"
        )
    skipped = len(items) - len(todo)
    print(f"{len(items)} images: {skipped} predictions already in {out} (skipped), {len(todo)} to predict",
          file=sys.stderr, flush=True)

    if todo:
        _predict(args, out, todo)
    pairs = [(stem, out / f"{stem}.png", gt_path, None) for stem, _, gt_path, _ in items]
    names, rows = evaluate_files(pairs, digits=args.digits, progress=not args.quiet)
    print(mean_line(rows, args.digits), flush=True)
    write_csv(out / "metrics.csv", names, rows)
    if args.csv:
        write_csv(args.csv, names, rows)
    return 0


class BenchmarkWorker:
    """One loaded model predicting benchmark rows (``{"stem", "image", "gt", "trimap"}``) into PNG bytes;
    the batch command's runner runs it here or in Ray actors (``--ray``), one model per actor."""

    def __init__(self, settings: dict):
        import torch

        if settings.get("threads"):
            torch.set_num_threads(int(settings["threads"]))
        started = time.perf_counter()
        self.settings = settings
        self.net = _load_model(settings["model"], settings["device"], settings["precision"])
        print(f"loaded {settings['model']} in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

    def _model_fn(self, im, prompt_map, coords, kind, trans):
        import torch

        with torch.inference_mode():
            return self.net(im, prompt_map, coords, kind, trans, caption=None).float()

    def process(self, row: dict) -> dict:
        import torch

        from ..matting.pipeline import matte

        s = self.settings
        try:
            gt = read_grey(row["gt"])
            alpha = working_alpha(gt, s["resolution"])
            prompt = derive_prompt(s["prompt"], alpha, s["seed"],
                                   read_grey(row["trimap"]) if row["trimap"] is not None else None)
            image = stretch_image(read_rgb(row["image"]), s["resolution"])
            with torch.no_grad():
                pred = matte(self._model_fn, torch.from_numpy(image)[None], prompt, resolution=s["resolution"],
                             resize="stretch", focus="whole", transparent=bool(s["transparent"]))
        except MetricsError as e:
            return {"stem": row["stem"], "error": str(e), "files": {}}
        from ..matting.outputs import png_bytes

        levels = prediction_levels(pred[0].cpu().numpy(), gt.shape)
        return {"stem": row["stem"], "error": "", "files": {f"{row['stem']}.png": png_bytes(levels)}}


def _predict(args, out: Path, todo) -> None:
    from .runner import run_local, run_ray  # the batch command's machinery: local or Ray
    from ..matting.outputs import write_atomic

    settings = {"model": str(args.model), "device": args.device, "precision": args.precision,
                "resolution": args.resolution, "seed": args.seed, "transparent": bool(args.transparent),
                "prompt": args.prompt, "threads": args.threads}
    rows = [{"stem": stem, "image": str(image_path), "gt": str(gt_path),
             "trimap": str(trimap_path) if trimap_path is not None else None}
            for stem, image_path, gt_path, trimap_path in todo]
    failures = []

    def accept(result, row):
        if result["error"]:
            failures.append(f"{result['stem']}: {result['error']}")
        for name, data in result["files"].items():
            write_atomic(out / name, data)

    if args.ray is None:
        run_local(rows, BenchmarkWorker, settings, accept, progress=not args.quiet)
    else:
        if settings["threads"] is None:
            settings["threads"] = max(1, int(args.cpus_per_actor))
        run_ray(rows, BenchmarkWorker, settings, accept, address=args.ray or None, actors=args.actors,
                num_cpus=args.cpus_per_actor, num_gpus=args.gpus_per_actor, progress=not args.quiet)
    if failures:
        raise BenchmarkError(f"{len(failures)} image(s) could not be predicted:\n  " + "\n  ".join(failures[:10]))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m <pack>.batch.benchmark",
        description="Predict a test set with an SDMatte checkpoint, prompts derived from the ground truths as "
                    "the authors' test pipeline does, and measure the predictions (MSE, MAD, SAD, Grad, Conn).",
    )
    p.add_argument("--model", required=True, help="checkpoint (.safetensors / .pth) or Hugging Face-layout folder")
    p.add_argument("--images", required=True, type=Path, help="folder of the test images (RGB)")
    p.add_argument("--gt", required=True, type=Path, help="folder of the ground-truth mattes; every file is one image")
    p.add_argument("--prompt", required=True, choices=PROMPTS, help="the prompt derived from each ground truth")
    p.add_argument("--out", type=Path, help="folder for the predicted PNGs and metrics.csv "
                                            "(default: ./benchmark-<model>-<prompt>-<resolution>)")
    p.add_argument("--resolution", type=int, default=1024, help="working size, a multiple of 64 (default 1024)")
    p.add_argument("--seed", type=int, default=0, help="seed for the point clicks and trimap widths (default 0)")
    p.add_argument("--trimap-dir", type=Path, help="the set's trimaps (0/128/255), used for --prompt trimap")
    p.add_argument("--transparent", action="store_true", help="set SDMatte's transparent-object flag on every image")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                   help="UNet precision (default fp32, as the authors)")
    p.add_argument("--csv", type=Path, help="also write the numbers to this CSV file")
    p.add_argument("--digits", type=int, default=2, help="decimals in the printed lines (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per worker (default: all cores locally, --cpus-per-actor on Ray)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="predict on Ray Data (pip install -r requirements-batch.txt): without ADDRESS a local Ray, "
                        "with one that cluster; as the batch command's --ray")
    p.add_argument("--actors", type=int, default=1, help="with --ray: actors, one loaded model each (default 1)")
    p.add_argument("--cpus-per-actor", type=float, default=1.0, help="with --ray: CPUs per actor (default 1)")
    p.add_argument("--gpus-per-actor", type=float, default=0.0, help="with --ray: GPUs per actor (default 0)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.resolution < 64 or args.resolution % 64:
        print(f"error: --resolution {args.resolution} must be a multiple of 64 (e.g. 512, 1024)", file=sys.stderr)
        return 2
    if args.out is None:
        args.out = Path(f"benchmark-{Path(args.model).stem}-{args.prompt}-{args.resolution}")
    if args.device is None:
        try:
            import torch

            args.device = "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            args.device = "cpu"
    if not Path(args.model).exists():
        print(f"error: the checkpoint {args.model} does not exist", file=sys.stderr)
        return 2
    try:
        return run(args)
    except MetricsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # batch.runner.RayMissing: names the install command
        if type(e).__name__ != "RayMissing":
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the predictions written so far are kept; run the same command again to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
