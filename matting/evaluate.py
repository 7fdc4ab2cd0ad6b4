"""Measure a folder of predicted mattes against their ground truths, as the SDMatte authors do.

    python -m <pack>.matting.evaluate PRED_DIR GT_DIR [--trimap-dir DIR] [--csv OUT.csv]

(run from the folder that holds the pack, e.g. ``python -m PromptMatte.matting.evaluate``). Every
ground truth in GT_DIR is one image of the set; its prediction is the file in PRED_DIR with the
same name stem (``a.png`` for ``a.png`` or ``a.jpg``), and so is its trimap in DIR. Files are read
as 8-bit grey as the authors read them (``cv2.imread(path, 0)``): see :func:`read_grey`. Prints one
line per image and the set's mean in the authors' format (``name: MSE: ..  MAD: ..  SAD: .. Grad:
.. Conn: ..``; MSE and MAD × 1000), with a progress bar on stderr; ``--csv`` also writes the
numbers at full precision. Without a trimap the whole image is measured (as their
``evaluation.py``); with one, only its unknown pixels (value 128). See :mod:`.metrics`.

Needs numpy, scipy and Pillow only (no ComfyUI; tqdm is used for the bar when installed).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .metrics import METRIC_NAMES, MetricsError, format_line, matte_metrics, mean_metrics

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


# ----------------------------------------------------------------------------- files


def read_grey(path) -> np.ndarray:
    """A matte file as float32 grey levels 0..255, as ``cv2.imread(path, 0)`` reads it.

    8-bit grey as stored; 16-bit grey keeps its high byte (OpenCV's 8-bit read strips the low
    one); colour PNGs become ``(9797·R + 19234·G + 3737·B) >> 15`` (the libpng conversion OpenCV
    asks for), other colour files ``(4899·R + 9617·G + 1868·B + 8192) >> 14`` (OpenCV's
    BGR2GRAY); JPEGs are decoded straight to grey (their luma), as libjpeg does for OpenCV;
    palette images are expanded to colour first. Checked equal to cv2.imread(path, 0) for grey,
    colour, palette, 1-bit and 16-bit PNGs, colour and grey JPEGs, BMP and TIFF. Files with an alpha
    channel are refused: the authors' reader drops it and greys the colours, which is never the
    matte of an RGBA cut-out.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            if img.format == "JPEG" and img.mode != "L":
                img.draft("L", img.size)
            img.load()
            mode, fmt = img.mode, img.format
            if mode == "P":
                if "transparency" in img.info:
                    raise MetricsError(_alpha_message(path, "a palette with transparency"))
                img = img.convert("RGB")
                mode = "RGB"
            if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
                raise MetricsError(_alpha_message(path, f"an alpha channel ({mode})"))
            if mode == "L":
                return np.asarray(img, dtype=np.uint8).astype(np.float32)
            if mode == "1":
                return np.asarray(img.convert("L"), dtype=np.uint8).astype(np.float32)
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                values = np.asarray(img).astype(np.int64)
                if values.min() < 0 or values.max() > 65535:
                    raise MetricsError(f"{path} holds values outside 0..65535; save the matte as an 8-bit grey PNG")
                return (values >> 8).astype(np.float32)
            if mode == "RGB":
                rgb = np.asarray(img, dtype=np.uint8).astype(np.int64)
                r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
                if fmt == "PNG":  # libpng converts (OpenCV asks it for grey)
                    grey = (9797 * r + 19234 * g + 3737 * b) >> 15
                else:  # OpenCV decodes colour, then cvtColor(BGR2GRAY)
                    grey = (4899 * r + 9617 * g + 1868 * b + 8192) >> 14
                return grey.astype(np.float32)
            if mode == "YCbCr":
                return np.asarray(img, dtype=np.uint8)[..., 0].astype(np.float32)
    except FileNotFoundError:
        raise MetricsError(f"{path} does not exist") from None
    except UnidentifiedImageError:
        raise MetricsError(f"{path} is not an image file Pillow can read (or it is damaged)") from None
    except OSError as e:
        raise MetricsError(f"{path} cannot be read ({e}); write the file again") from None
    raise MetricsError(f"{path} is a {mode} image; save the matte as an 8-bit grey PNG")


def _alpha_message(path: Path, what: str) -> str:
    return (
        f"{path} has {what}: the metrics read a grey matte as the authors do (cv2.imread(path, 0) drops "
        "the alpha channel and greys the colours), so an RGBA cut-out would be measured by its colours; "
        "save the matte itself as a grey PNG (e.g. Matte Composite's alpha through Mask To Image)"
    )


def images_by_stem(folder, what: str) -> dict:
    """{stem: path} of the image files in ``folder``; two files with one stem are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MetricsError(f"the {what} folder {folder} does not exist or is not a folder")
    found: dict = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES and not entry.name.startswith("."):
            if entry.stem in found:
                raise MetricsError(
                    f"the {what} folder {folder} has two files named {entry.stem!r} "
                    f"({found[entry.stem].name} and {entry.name}); keep one per image"
                )
            found[entry.stem] = entry
    return found


def pair_files(pred_dir, gt_dir, trimap_dir=None) -> list:
    """[(stem, prediction, ground truth, trimap or None)] for every ground truth, sorted by stem."""
    gts = images_by_stem(gt_dir, "ground-truth")
    if not gts:
        raise MetricsError(f"the ground-truth folder {gt_dir} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    preds = images_by_stem(pred_dir, "prediction")
    trimaps = images_by_stem(trimap_dir, "trimap") if trimap_dir is not None else None
    missing = [s for s in gts if s not in preds]
    if missing:
        raise MetricsError(
            f"{len(missing)} of {len(gts)} ground truths have no prediction in {pred_dir} (matched by file "
            f"name without extension): {_some(missing)}; predict them, or measure a ground-truth folder "
            "that holds only the predicted images"
        )
    if trimaps is not None:
        no_trimap = [s for s in gts if s not in trimaps]
        if no_trimap:
            raise MetricsError(
                f"{len(no_trimap)} of {len(gts)} ground truths have no trimap in {trimap_dir}: {_some(no_trimap)}; "
                "add their trimaps, or measure the whole images (no --trimap-dir)"
            )
    return [(s, preds[s], gts[s], trimaps[s] if trimaps is not None else None) for s in sorted(gts)]


def _some(names: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


# ----------------------------------------------------------------------------- measuring


class _Progress:
    """tqdm on stderr when installed, else a plain ``[i/n] name`` line per image."""

    def __init__(self, total: int, desc: str, enabled: bool = True):
        self.total, self.done, self.enabled = total, 0, enabled
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False)

    def write(self, line: str, stream=None) -> None:
        stream = stream or sys.stdout
        if self.bar is not None:
            self.bar.write(line, file=stream)
        else:
            print(line, file=stream, flush=True)

    def step(self, name: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled:
            print(f"[{self.done}/{self.total}] {name}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def evaluate_files(pairs, *, digits: int = 2, progress: bool = True, on_line: Callable | None = None):
    """Measure ``pairs`` from :func:`pair_files`; returns (names, per-image metric dicts).

    Each image's line (:func:`~.metrics.format_line`) goes to ``on_line`` (default: stdout, beside
    the progress bar). A file that cannot be read or measured stops with a :class:`MetricsError`
    naming it.
    """
    names, rows = [], []
    bar = _Progress(len(pairs), "measuring", progress)
    try:
        for stem, pred_path, gt_path, trimap_path in pairs:
            try:
                values = matte_metrics(
                    read_grey(pred_path),
                    read_grey(gt_path),
                    read_grey(trimap_path) if trimap_path is not None else None,
                )
            except MetricsError as e:
                raise MetricsError(f"{stem}: {e}") from None
            names.append(stem)
            rows.append(values)
            line = format_line(stem, values, digits)
            (on_line or bar.write)(line)
            bar.step(stem)
    finally:
        bar.close()
    return names, rows


def write_csv(path, names, rows) -> None:
    """name, MSE, MAD, SAD, Grad, Conn per image (full precision) and a final ``mean`` row."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", *METRIC_NAMES])
        for name, row in zip(names, rows):
            w.writerow([name, *(repr(float(row[k])) for k in METRIC_NAMES)])
        mean = mean_metrics(rows)
        w.writerow(["mean", *(repr(mean[k]) for k in METRIC_NAMES)])
    os.replace(tmp, path)


def mean_line(rows, digits: int = 2) -> str:
    return format_line(f"mean of {len(rows)}", mean_metrics(rows), digits)


# ----------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m <pack>.matting.evaluate",
        description="MSE, MAD, SAD, Grad and Conn of predicted mattes against ground truths, as the SDMatte "
                    "authors compute them (MSE and MAD x1000; SAD, Grad, Conn /1000; set = mean of images).",
    )
    p.add_argument("pred_dir", type=Path, help="folder of predicted mattes (grey PNGs)")
    p.add_argument("gt_dir", type=Path, help="folder of ground-truth mattes; every file is one image of the set")
    p.add_argument("--trimap-dir", type=Path, help="trimaps (0/128/255): measure their unknown pixels (128) only")
    p.add_argument("--csv", type=Path, help="also write the numbers (full precision) to this CSV file")
    p.add_argument("--digits", type=int, default=2, help="decimals in the printed lines (default 2, as the authors)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        pairs = pair_files(args.pred_dir, args.gt_dir, args.trimap_dir)
        names, rows = evaluate_files(pairs, digits=args.digits, progress=not args.quiet)
        print(mean_line(rows, args.digits), flush=True)
        if args.csv is not None:
            write_csv(args.csv, names, rows)
    except MetricsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
