"""Run an SDMatte checkpoint over a test set and measure it as the authors' test scripts do.

    python -m <pack>.matting.benchmark --model FILE --images DIR --gt DIR \\
        --prompt {box,mask,point,trimap,auto} [--out DIR] [--resolution 1024] [--seed 0]
        [--trimap-dir DIR] [--transparent] [--device cpu|cuda] [--csv FILE]
        [--ray [ADDRESS] [--actors N] [--cpus-per-actor N] [--gpus-per-actor N]] [--threads N]

Every ground truth in ``--gt`` is one image of the set; its image is the file in ``--images`` with
the same name stem. Per image, as the authors' ``inference.py`` with their test transforms
(``data/dataset.py``: ``Resize((1024, 1024))``, ``GenTrimap``, ``GenMask``, ``GenBBox``,
``GenPoint``):

1. the image (RGB / 255) and the ground-truth alpha (grey / 255) are stretched to
   ``resolution``² with bilinear interpolation (``cv2.resize`` INTER_LINEAR arithmetic);
2. the prompt is derived from that alpha:

   * ``box``: rows ``y_min:y_max`` and columns ``x_min:x_max`` of ``alpha > 0`` (the last row and
     column excluded, as their ``bbox_mask[y_min:y_max, x_min:x_max]``), or of its largest
     4-connected component when that is at least 10× the second largest;
   * ``mask``: the ``alpha > 0`` region (their test pipeline draws a random threshold and random
     erosion / dilation when a set has no mask files; we take the threshold 0 and no morphology);
   * ``point``: 10 pixels with ``alpha > 0.8`` drawn as their ``GenPoint`` draws them
     (``np.random.choice(n, 10, replace=False)``), from ``np.random.RandomState(seed)`` fresh for
     every image, so a run and its resumption draw the same clicks;
   * ``trimap``: the set's trimap file when ``--trimap-dir`` is given (128 → unknown, 255 →
     foreground, nearest-resized), else their ``GenTrimap`` on the alpha: sure foreground where
     ``alpha + 1e-5`` eroded by an elliptical kernel of ``fg`` px stays above 0.95, sure
     background where ``1 - alpha + 1e-5`` eroded by one of ``bg`` px does, with
     ``fg, bg = randint(15, 30)`` from the same per-image seed;
   * ``auto``: no prompt;
3. the model runs on the stretched image (fp32 by default), its alpha × 255 is resized back to the
   ground truth's size (bilinear) and truncated to 8 bits (``.astype(np.uint8)``), and written as
   ``OUT/<stem>.png`` (through a temporary name, so an interrupted run never leaves half a file);
4. all predictions are measured (:mod:`.evaluate`: MSE, MAD, SAD, Grad, Conn over the whole image,
   as their ``evaluation.py``) and the table is printed and written to ``OUT/metrics.csv``.

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

import numpy as np

from .evaluate import evaluate_files, images_by_stem, mean_line, read_grey, write_csv
from .metrics import MetricsError, resize_bilinear

PROMPTS = ("box", "mask", "point", "trimap", "auto")
POINT_THRESHOLD = 0.8  # GenPoint(0.8, ...) at test time
NUM_POINTS = 10
TRIMAP_WIDTHS = (15, 30)  # np.random.randint(15, 30): kernel sizes 15..29 px at the working size
SETTINGS_FILE = "benchmark.json"


class BenchmarkError(MetricsError):
    """A data set, checkpoint or output folder the benchmark cannot use (the message says why and what to do)."""


# ----------------------------------------------------------------------------- prompts from alpha


def working_alpha(gt_levels: np.ndarray, resolution: int) -> np.ndarray:
    """The ground truth as the model's input sees it: grey / 255, stretched to resolution² (float32)."""
    alpha = (np.asarray(gt_levels, dtype=np.float32) / np.float32(255.0)).astype(np.float32)
    return resize_bilinear(alpha, (resolution, resolution))


def box_from_alpha(alpha: np.ndarray):
    """(x1, y1, x2, y2) of their test-time ``GenBBox``: the box of ``alpha > 0`` (or of its largest
    component when it is >= 10× the second), with the last row and column indices as the
    exclusive ends. None when the alpha is empty."""
    import scipy.ndimage as ndi

    binary = alpha > 0
    if not binary.any():
        return None
    labels, count = ndi.label(binary)
    points = np.argwhere(binary)
    (y_min, x_min), (y_max, x_max) = points.min(axis=0), points.max(axis=0)
    if count > 1:
        areas = np.bincount(labels.ravel())[1:]
        order = np.argsort(areas)[::-1]
        if areas[order[0]] >= 10 * areas[order[1]]:
            own = np.argwhere(labels == order[0] + 1)
            (y_min, x_min), (y_max, x_max) = own.min(axis=0), own.max(axis=0)
    return int(x_min), int(y_min), int(x_max), int(y_max)


def points_from_alpha(alpha: np.ndarray, seed: int):
    """10 clicks (x, y) as their ``GenPoint(0.8)`` draws them, or None when fewer than 10 pixels qualify."""
    ys, xs = np.where(alpha > POINT_THRESHOLD)
    if len(ys) < NUM_POINTS:
        return None
    chosen = np.random.RandomState(seed).choice(len(ys), size=NUM_POINTS, replace=False)
    return [(float(xs[i]), float(ys[i])) for i in chosen]


def ellipse_kernel(size: int) -> np.ndarray:
    """``cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))`` as a boolean array."""
    r = c = size // 2
    kernel = np.zeros((size, size), dtype=bool)
    inv = 1.0 / (r * r) if r else 0.0
    for i in range(size):
        dy = i - r
        if abs(dy) <= r:
            dx = int(np.rint(c * np.sqrt((r * r - dy * dy) * inv)))
            kernel[i, max(c - dx, 0): min(c + dx + 1, size)] = True
    return kernel


def _erode(values: np.ndarray, size: int) -> np.ndarray:
    """``cv2.erode(values, ellipse)``: the minimum under the kernel (anchor at its centre); the
    outside of the image does not erode (OpenCV's default border for erosion)."""
    import scipy.ndimage as ndi

    return ndi.minimum_filter(values, footprint=ellipse_kernel(size), mode="constant", cval=np.inf)


def trimap_from_alpha(alpha: np.ndarray, seed: int) -> np.ndarray:
    """0 / 0.5 / 1 trimap of their ``GenTrimap`` (no trimap file), widths drawn from ``RandomState(seed)``."""
    rng = np.random.RandomState(seed)
    fg_width = int(rng.randint(*TRIMAP_WIDTHS))
    bg_width = int(rng.randint(*TRIMAP_WIDTHS))
    a = alpha.astype(np.float32)
    fg = _erode((a + np.float32(1e-5)).astype(np.float32), fg_width)
    bg = _erode((np.float32(1) - a + np.float32(1e-5)).astype(np.float32), bg_width)
    trimap = np.full(a.shape, 0.5, dtype=np.float32)
    trimap[fg > np.float32(0.95)] = 1.0
    trimap[bg > np.float32(0.95)] = 0.0
    return trimap


def nearest_resize(values: np.ndarray, size) -> np.ndarray:
    """OpenCV's INTER_NEAREST: source index floor(d · in / out)."""
    h, w = values.shape
    H, W = size
    rows = np.minimum(np.floor(np.arange(H) * (h / H)).astype(np.intp), h - 1)
    cols = np.minimum(np.floor(np.arange(W) * (w / W)).astype(np.intp), w - 1)
    return values[rows][:, cols]


def trimap_from_file(levels: np.ndarray, resolution: int) -> np.ndarray:
    """A set's trimap file (grey levels) as their loader reads it: 128 → 0.5, 255 → 1, nearest-resized."""
    t = np.asarray(levels, dtype=np.float32).copy()
    t[t == 128] = 0.5
    t[t == 255] = 1.0
    return nearest_resize(t, (resolution, resolution))


def derive_prompt(kind: str, alpha: np.ndarray, seed: int, trimap_levels=None):
    """The :class:`~.prompt.Prompt` for one image, in pixels of the resolution² working image."""
    from .prompt import Prompt

    size = alpha.shape
    if kind == "box":
        box = box_from_alpha(alpha)
        if box is None:
            raise BenchmarkError("its ground truth is empty (no pixel above 0): there is no box to draw")
        x1, y1, x2, y2 = box
        # their box excludes its last row and column; a one-pixel-wide box keeps one pixel
        return Prompt.from_box(x1, y1, max(x2, x1 + 1), max(y2, y1 + 1), source_size=size)
    if kind == "mask":
        region = alpha > 0
        if not region.any():
            raise BenchmarkError("its ground truth is empty (no pixel above 0): there is no mask")
        return Prompt.from_mask(region.astype(np.float32), threshold=0.5)
    if kind == "point":
        points = points_from_alpha(alpha, seed)
        if points is None:
            n = int(np.count_nonzero(alpha > POINT_THRESHOLD))
            raise BenchmarkError(
                f"only {n} pixels of its ground truth are above {POINT_THRESHOLD} at the working size; "
                f"the authors' point sampler needs {NUM_POINTS}"
            )
        return Prompt.from_points(points, source_size=size)
    if kind == "trimap":
        if trimap_levels is not None:
            trimap = trimap_from_file(trimap_levels, size[0])
        else:
            trimap = trimap_from_alpha(alpha, seed)
        if not (trimap > 0.25).any():
            raise BenchmarkError("its trimap is all background: no foreground or unknown pixel to matte")
        return Prompt.from_trimap(trimap)
    if kind == "auto":
        return Prompt.auto()
    raise BenchmarkError(f"unknown prompt kind {kind!r}; use one of {', '.join(PROMPTS)}")


# ----------------------------------------------------------------------------- files


def read_rgb(path) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] (the authors read BGR with OpenCV and swap to RGB)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                img = img.convert("RGBA").convert("RGB")  # OpenCV's colour read drops alpha too
            elif img.mode != "RGB":
                img = img.convert("RGB")
            return np.asarray(img, dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    except FileNotFoundError:
        raise BenchmarkError(f"{path} does not exist") from None
    except (UnidentifiedImageError, OSError) as e:
        raise BenchmarkError(f"{path} cannot be read as an image ({e})") from None


def stretch_image(rgb01: np.ndarray, resolution: int) -> np.ndarray:
    """(R, R, 3) float32: each channel resized as ``cv2.resize(image, (R, R))``."""
    return np.stack([resize_bilinear(rgb01[..., c], (resolution, resolution)) for c in range(3)], axis=-1)


def prediction_levels(alpha_work: np.ndarray, size) -> np.ndarray:
    """uint8 matte at the ground truth's size: ``cv2.resize(pred * 255, (W, H)).astype(np.uint8)``."""
    scaled = (np.clip(alpha_work, 0.0, 1.0).astype(np.float32) * np.float32(255.0)).astype(np.float32)
    return np.floor(resize_bilinear(scaled, size)).astype(np.uint8)


def existing_prediction(path: Path, size) -> bool:
    """True when ``path`` is a readable image of ``size`` (H, W): a finished earlier prediction."""
    from PIL import Image

    if not path.is_file():
        return False
    try:
        with Image.open(path) as img:
            img.load()
            return (img.height, img.width) == tuple(size)
    except Exception:  # noqa: BLE001 - damaged or partial: predict again
        return False


def write_png(path: Path, levels: np.ndarray) -> None:
    from .outputs import png_bytes, write_atomic

    write_atomic(path, png_bytes(levels))


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
        from ..batch.runner import import_ray

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

        from .pipeline import matte

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
        from .outputs import png_bytes

        levels = prediction_levels(pred[0].cpu().numpy(), gt.shape)
        return {"stem": row["stem"], "error": "", "files": {f"{row['stem']}.png": png_bytes(levels)}}


def _predict(args, out: Path, todo) -> None:
    from ..batch.runner import run_local, run_ray  # the batch command's machinery: local or Ray
    from .outputs import write_atomic

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
        prog="python -m <pack>.matting.benchmark",
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
