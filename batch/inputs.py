"""What a batch job mattes: its inputs (images or a video's frames) and each one's prompt.

A job is a list of *rows*, plain dicts that travel to any worker (this process or a Ray actor):
``{"stem": name of the outputs, "source": image or video path, "frame": frame index or -1,
"prompt": JSON of the prompt}``. Workers read the pixels themselves (:func:`read_input`,
:func:`read_prompt`), so a row is small and paths must be readable where the worker runs.

Problems with the job as a whole (no input found, a prompt file that cannot be parsed) are
:class:`JobError`s; problems with one input (unreadable, a prompt that does not fit it) are
:class:`ItemError`s, reported for that input while the others carry on.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")
PROMPT_FORMS = ("mask", "trimap")
DEFAULT_STEM = "*"  # a JSONL line for every input without its own line


class JobError(ValueError):
    """The job cannot start (the message says why and what to do)."""


class ItemError(ValueError):
    """One input cannot be matted (the message says why); the job goes on with the others."""


# ----------------------------------------------------------------------------- inputs


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_inputs(spec: str) -> list[dict]:
    """[{"stem", "source", "frame"}] of a folder of images, a glob of images, one image, or a video file
    (one entry per frame, stems ``<video stem>_<frame:06d>``), sorted by stem."""
    path = Path(spec)
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.is_file() and _is_image(p)]
        if not files:
            raise JobError(f"the input folder {spec} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    elif path.is_file() and _is_video(path):
        return [{"stem": f"{path.stem}_{i:06d}", "source": str(path.resolve()), "frame": i}
                for i in range(count_frames(path))]
    elif path.is_file():
        files = [path]
    elif glob.has_magic(spec):
        files = [Path(p) for p in sorted(glob.glob(spec, recursive=True)) if Path(p).is_file() and _is_image(Path(p))]
        if not files:
            raise JobError(f"the pattern {spec!r} matches no image file ({', '.join(IMAGE_SUFFIXES)})")
    else:
        raise JobError(f"the input {spec} does not exist; give a folder of images, a glob like 'photos/*.jpg' "
                       "(quoted), an image or a video file")
    seen: dict = {}
    for f in files:
        if f.stem in seen:
            raise JobError(f"two inputs are named {f.stem!r} ({seen[f.stem]} and {f}): their outputs would be "
                           "the same file; rename one")
        seen[f.stem] = f
    return [{"stem": f.stem, "source": str(f.resolve()), "frame": -1} for f in sorted(files, key=lambda p: p.stem)]


def count_frames(path: Path) -> int:
    """Frames of the first video stream, counted by decoding (containers' own counts can be wrong)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise JobError(f"{path} has no video stream")
            return sum(1 for _ in container.decode(video=0))
    except av.error.FFmpegError as e:
        raise JobError(f"{path} cannot be read as a video ({e})") from None


class VideoFrames:
    """Frames of one video by index, decoding forward from where the last read stopped (a worker
    given increasing indices decodes the video once; going back reopens it)."""

    def __init__(self, path: str):
        self.path = path
        self._container = None
        self._frames = None
        self._next = 0

    def frame(self, index: int) -> np.ndarray:
        import av

        if self._container is None or index < self._next:
            self.close()
            self._container = av.open(self.path)
            self._frames = self._container.decode(video=0)
            self._next = 0
        for frame in self._frames:
            self._next += 1
            if self._next - 1 == index:
                return frame.to_ndarray(format="rgb24")
        raise ItemError(f"{self.path} has no frame {index}")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._frames = None


def read_image(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB, turned upright by its EXIF orientation as ComfyUI's Load Image does; an
    alpha channel is dropped (the subject is matted from its colours)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode == "I;16" or img.mode == "I":
                img = Image.fromarray((np.asarray(img, dtype=np.float64) / 257.0).round().clip(0, 255).astype(np.uint8))
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise ItemError(f"{path} does not exist (any more)") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ItemError(f"{path} cannot be read as an image ({e})") from None


def read_input(row: dict, videos: dict) -> np.ndarray:
    """The pixels of a row: (H, W, 3) uint8 RGB. ``videos`` keeps open video readers by path."""
    if int(row["frame"]) < 0:
        return read_image(row["source"])
    reader = videos.get(row["source"])
    if reader is None:
        reader = videos[row["source"]] = VideoFrames(row["source"])
    return reader.frame(int(row["frame"]))


# ----------------------------------------------------------------------------- prompts


def _grey01(path: str) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the grey levels of a mask / trimap file (8 or 16 bit)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                return (np.asarray(img, dtype=np.float64) / 65535.0).clip(0, 1).astype(np.float32)
            return np.asarray(img.convert("L"), dtype=np.float32) / np.float32(255.0)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ItemError(f"the prompt file {path} cannot be read as an image ({e})") from None


def prompt_rows(spec: str, rows: list[dict], form: str) -> None:
    """Set each row's ``"prompt"`` (a JSON string) from ``--prompt``: ``auto``; a folder of masks or
    trimaps (``form``) matched by stem; or a JSONL file of points / boxes per stem."""
    if spec == "auto":
        for row in rows:
            row["prompt"] = json.dumps({"kind": "auto"})
        return
    path = Path(spec)
    if path.is_dir():
        files = {}
        for p in sorted(path.iterdir()):
            if p.is_file() and _is_image(p):
                files.setdefault(p.stem, p)
        if not files:
            raise JobError(f"the prompt folder {spec} holds no image files (masks or trimaps named like the inputs)")
        for row in rows:
            found = files.get(row["stem"])
            row["prompt"] = json.dumps({"kind": form, "path": str(found.resolve())} if found else
                                       {"kind": "missing", "why": f"no {form} named {row['stem']}.* in {spec}"})
        return
    if path.is_file() and path.suffix.lower() in (".jsonl", ".json"):
        table = read_prompt_table(path)
        for row in rows:
            entry = table.get(row["stem"], table.get(DEFAULT_STEM))
            row["prompt"] = json.dumps(entry if entry is not None else
                                       {"kind": "missing", "why": f"no line for {row['stem']!r} in {spec}"})
        return
    raise JobError(f"--prompt {spec}: give 'auto', a folder of masks or trimaps named like the inputs, or a .jsonl "
                   'file with lines like {"stem": "cat", "points": [[120, 80]]} or {"stem": "cat", "box": '
                   "[10, 20, 200, 220]}")


def read_prompt_table(path: Path) -> dict:
    """{stem: {"kind": "point", "points": [[x, y], ...]} | {"kind": "box", "box": [x1, y1, x2, y2]}} of a
    JSONL file; a malformed line stops the job with its line number."""
    from ..matting.errors import PromptError
    from ..matting.prompt import parse_points_json

    table: dict = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                entry = json.loads(line)
            except ValueError as e:
                raise JobError(f"{where} is not JSON ({e})") from None
            if not isinstance(entry, dict) or not isinstance(entry.get("stem"), str):
                raise JobError(f'{where} needs a "stem": the input\'s file name without extension ("*" for all others)')
            stem = entry["stem"]
            if stem in table:
                raise JobError(f"{where}: {stem!r} has a prompt already; keep one line per input")
            if ("points" in entry) == ("box" in entry):
                raise JobError(f'{where}: give either "points" ([[x, y], ...] pixels) or "box" ([x1, y1, x2, y2])')
            if "points" in entry:
                try:
                    points = parse_points_json(json.dumps(entry["points"]), what=where)
                except PromptError as e:
                    raise JobError(str(e)) from None
                table[stem] = {"kind": "point", "points": [list(p) for p in points]}
            else:
                box = entry["box"]
                if not (isinstance(box, list) and len(box) == 4 and all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
                    raise JobError(f"{where}: the box must be four numbers [x1, y1, x2, y2] in pixels")
                table[stem] = {"kind": "box", "box": [float(v) for v in box]}
    if not table:
        raise JobError(f"{path} holds no prompt line")
    return table


def read_prompt(row: dict, size: tuple[int, int]):
    """The :class:`~..matting.prompt.Prompt` of a row for an image of ``size`` (H, W)."""
    from ..matting.prompt import Prompt

    spec = json.loads(row["prompt"])
    kind = spec["kind"]
    if kind == "missing":
        raise ItemError(spec["why"])
    if kind == "auto":
        return Prompt.auto()
    if kind == "point":
        return Prompt.from_points(spec["points"], source_size=size)
    if kind == "box":
        return Prompt.from_box(*spec["box"], source_size=size)
    values = _grey01(spec["path"])
    if values.shape != tuple(size):
        raise ItemError(f"the {kind} {spec['path']} is {values.shape[1]}×{values.shape[0]} but the image is "
                        f"{size[1]}×{size[0]} (width×height); give a {kind} of the image's size")
    import torch

    t = torch.from_numpy(values)
    return Prompt.from_mask(t) if kind == "mask" else Prompt.from_trimap(t)


def prompt_kinds(rows: list[dict]) -> set:
    return {json.loads(row["prompt"])["kind"] for row in rows} - {"missing"}


def close_videos(videos: dict) -> None:
    for reader in videos.values():
        reader.close()
    videos.clear()

